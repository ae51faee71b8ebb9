provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "dogops"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}

provider "archive" {}
