variable "name_prefix" {
  description = "Prefix of every role, policy and instance profile name (for example \"dogops-dev\")."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the artifact bucket (storage module output s3_bucket_arn)."
  type        = string
}

variable "bucket_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the artifact bucket (storage module output kms_key_arn)."
  type        = string
}

variable "bucket_prefixes" {
  description = "Key prefixes of the artifact bucket that the SageMaker role and the training host may read and write."
  type        = list(string)
  default     = ["data/", "models/", "checkpoints/", "code/"]

  validation {
    condition     = alltrue([for p in var.bucket_prefixes : can(regex("^[A-Za-z0-9._-]+/$", p))])
    error_message = "Each bucket prefix is a plain folder name ending in \"/\" (no wildcards)."
  }
}

variable "endpoint_name" {
  description = "Name of the SageMaker endpoint the Lambda function may invoke (created by `ops promote-endpoint`)."
  type        = string
}

variable "lambda_function_name" {
  description = "Name of the Lambda function; its role may write only to /aws/lambda/<name>."
  type        = string
}

variable "dlc_registry_account_id" {
  description = "AWS account that hosts the Deep Learning Container images in ECR (763104351884 in most commercial regions)."
  type        = string
  default     = "763104351884"
}

variable "dlc_repositories" {
  description = "Deep Learning Container ECR repositories the SageMaker role may pull from."
  type        = list(string)
  default     = ["pytorch-training", "pytorch-inference"]
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
