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

variable "training_read_prefixes" {
  description = "Bucket prefixes training (SageMaker jobs and the training host) may read and list: the data set, the code tarball, and checkpoints to resume from."
  type        = list(string)
  default     = ["data/", "code/", "checkpoints/"]

  validation {
    condition     = alltrue([for p in var.training_read_prefixes : can(regex("^[A-Za-z0-9._-]+/$", p))])
    error_message = "Each bucket prefix is a plain folder name ending in \"/\" (no wildcards)."
  }
}

variable "training_write_prefixes" {
  description = "Bucket prefixes training may write: the model and its checkpoints."
  type        = list(string)
  default     = ["models/", "checkpoints/"]

  validation {
    condition     = alltrue([for p in var.training_write_prefixes : can(regex("^[A-Za-z0-9._-]+/$", p))])
    error_message = "Each bucket prefix is a plain folder name ending in \"/\" (no wildcards)."
  }
}

variable "endpoint_read_prefixes" {
  description = "Bucket prefixes the endpoint's model may read (it writes nothing)."
  type        = list(string)
  default     = ["models/"]

  validation {
    condition     = alltrue([for p in var.endpoint_read_prefixes : can(regex("^[A-Za-z0-9._-]+/$", p))])
    error_message = "Each bucket prefix is a plain folder name ending in \"/\" (no wildcards)."
  }
}

variable "endpoint_name" {
  description = "Name of the SageMaker endpoint (created by `ops promote-endpoint`): the Lambda function may invoke it, and the endpoint role writes only to its log group."
  type        = string
}

variable "lambda_function_name" {
  description = "Name of the Lambda function; its role may write only to /aws/lambda/<name>, and only that function may assume it."
  type        = string
}

variable "dlc_registry_account_id" {
  description = "AWS account that hosts the Deep Learning Container images in ECR (763104351884 in most commercial regions)."
  type        = string
  default     = "763104351884"
}

variable "training_image_repositories" {
  description = "Deep Learning Container ECR repositories the training role may pull from."
  type        = list(string)
  default     = ["pytorch-training"]
}

variable "endpoint_image_repositories" {
  description = "Deep Learning Container ECR repositories the endpoint role may pull from."
  type        = list(string)
  default     = ["pytorch-inference"]
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
