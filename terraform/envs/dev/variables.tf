# Values live in terraform.tfvars, the single source of truth for this environment: the
# mission numbers below deliberately have no defaults.

variable "region" {
  description = "AWS region of the whole environment."
  type        = string
}

variable "environment" {
  description = "Environment name, used in resource names and the Environment tag."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of IAM role, policy and instance profile names."
  type        = string
}

variable "bucket_name_prefix" {
  description = "Prefix of the artifact bucket name (AWS appends a unique suffix)."
  type        = string
}

variable "lambda_function_name" {
  description = "Name of the Lambda function in front of the endpoint."
  type        = string
}

variable "lambda_source_dir" {
  description = "Directory zipped into the Lambda package (the repository's lambda_src/), relative to this directory: terraform runs here, or with -chdir pointing here."
  type        = string
}

variable "lambda_alias_name" {
  description = "Alias clients invoke; it carries the provisioned concurrency."
  type        = string
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of the Lambda function."
  type        = number
}

variable "provisioned_concurrency" {
  description = "Provisioned concurrent executions on the Lambda alias."
  type        = number
}

variable "lambda_log_retention_in_days" {
  description = "Retention of the Lambda log group in days."
  type        = number
}

variable "endpoint_name" {
  description = "Name of the SageMaker endpoint (created by `ops promote-endpoint`)."
  type        = string
}

variable "variant_name" {
  description = "Production variant of the endpoint that autoscaling manages."
  type        = string
}

variable "enable_endpoint_autoscaling" {
  description = "Register the endpoint variant with Application Auto Scaling. The endpoint must exist: apply with false before the first `ops promote-endpoint`, then with true."
  type        = bool
  default     = true
}

variable "min_capacity" {
  description = "Fewest endpoint instances."
  type        = number
}

variable "max_capacity" {
  description = "Most endpoint instances."
  type        = number
}

variable "target_invocations_per_instance" {
  description = "Target invocations per instance per minute for the target tracking policy."
  type        = number
}

variable "scale_in_cooldown" {
  description = "Seconds after a scale-in before another scale-in may start."
  type        = number
}

variable "scale_out_cooldown" {
  description = "Seconds after a scale-out during which only a larger scale-out may start."
  type        = number
}

variable "training_instance_type" {
  description = "EC2 instance type of the training host."
  type        = string
}

variable "training_host_subnet_id" {
  description = "Subnet (with outbound HTTPS) for the training host; null creates no training host."
  type        = string
  default     = null
}

variable "training_host_repo_url" {
  description = "HTTPS git URL of this project for the training host's user data; null creates no training host."
  type        = string
  default     = null
}

variable "training_host_repo_commit" {
  description = "Full commit id the training host installs (git rev-parse HEAD of a pushed commit); null creates no training host."
  type        = string
  default     = null
}
