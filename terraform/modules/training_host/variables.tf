variable "name" {
  description = "Name of the instance and prefix of its security group."
  type        = string
}

variable "subnet_id" {
  description = "Subnet of the host. It needs outbound HTTPS (NAT gateway, or VPC endpoints for SSM plus a route to git and PyPI) because the host gets no public IP by default."
  type        = string
}

variable "iam_instance_profile" {
  description = "Name of the instance profile (iam module output training_host_instance_profile_name)."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type of the training host."
  type        = string
  default     = "m5.2xlarge"
}

variable "ami_name_filter" {
  description = "Name pattern of the AWS Deep Learning AMI to launch (newest match owned by Amazon wins)."
  type        = string
  default     = "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *"
}

variable "root_volume_size" {
  description = "Size of the encrypted root volume in GiB (the Deep Learning AMI alone needs about 100 GiB)."
  type        = number
  default     = 200

  validation {
    condition     = var.root_volume_size >= 100
    error_message = "root_volume_size must be at least 100 GiB for the Deep Learning AMI."
  }
}

variable "root_volume_kms_key_id" {
  description = "ARN of a KMS key for the root volume; null uses the account's default EBS key (aws/ebs)."
  type        = string
  default     = null
}

variable "associate_public_ip_address" {
  description = "Give the host a public IP (only for subnets without NAT). Even then nothing can connect in: the security group has no ingress rules."
  type        = bool
  default     = false
}

variable "repo_url" {
  description = "HTTPS git URL of this project, fetched by the user data and installed with `pip install -e .`."
  type        = string

  validation {
    condition     = can(regex("^https://[^'\\s]+$", var.repo_url))
    error_message = "repo_url must be an https:// URL without quotes or spaces (the security group only allows outbound 443)."
  }
}

variable "repo_commit" {
  description = "Full 40-character id of the commit the host installs. A commit, not a branch or tag: both can move, so the host would run code nobody reviewed for this apply."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{40}$", var.repo_commit))
    error_message = "repo_commit must be a full 40-character lowercase commit id (git rev-parse HEAD), not a branch or tag name."
  }
}

variable "install_dir" {
  description = "Absolute path on the host the project is checked out into; its virtual environment is <install_dir>/.venv. The only place this path is set: the user data and the module outputs (instance_install_dir, instance_venv_dir) take it from here."
  type        = string
  default     = "/opt/dogops"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.install_dir)) && !endswith(var.install_dir, "/")
    error_message = "install_dir must be an absolute path of letters, digits, '.', '_', '-' and '/', without a trailing '/'."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
