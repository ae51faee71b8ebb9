variable "function_name" {
  description = "Name of the Lambda function."
  type        = string
}

variable "role_arn" {
  description = "ARN of the execution role (iam module output lambda_role_arn)."
  type        = string
}

variable "endpoint_name" {
  description = "SageMaker endpoint the function invokes; passed to the code as ENDPOINT_NAME."
  type        = string
}

variable "alias_name" {
  description = "Name of the alias that points at the latest published version and carries the provisioned concurrency."
  type        = string
  default     = "live"
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of the function (the hard ceiling on concurrent requests). The account's concurrency limit must leave at least 100 unreserved after this reservation."
  type        = number

  validation {
    condition     = var.reserved_concurrency >= 0 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be a whole number >= 0."
  }
}

variable "provisioned_concurrency" {
  description = "Pre-initialized execution environments on the alias; 0 creates no provisioned concurrency config. Must not exceed reserved_concurrency."
  type        = number

  validation {
    condition     = var.provisioned_concurrency >= 0 && floor(var.provisioned_concurrency) == var.provisioned_concurrency
    error_message = "provisioned_concurrency must be a whole number >= 0."
  }
}

variable "source_dir" {
  description = "Directory zipped into the deployment package (the repository's lambda_src/). The caller knows where it lives; the module does not guess from path.root."
  type        = string
}

variable "handler" {
  description = "Entry point: file handler.py in source_dir, function handler."
  type        = string
  default     = "handler.handler"
}

variable "runtime" {
  description = "Lambda runtime identifier."
  type        = string
  default     = "python3.12"
}

variable "memory_size" {
  description = "Memory in MB (CPU scales with it)."
  type        = number
  default     = 512
}

variable "timeout" {
  description = "Function timeout in seconds; a little above the SageMaker runtime's 60 s invocation timeout."
  type        = number
  default     = 65
}

variable "tracing_mode" {
  description = "X-Ray tracing mode: \"PassThrough\" (default) or \"Active\". Active makes Lambda require xray:PutTraceSegments and xray:PutTelemetryRecords on Resource \"*\" in the execution role, which the least-privilege Lambda role does not grant."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the function's CloudWatch log group in days (365 keeps a year of request logs)."
  type        = number
  default     = 365
}

variable "environment_variables" {
  description = "Extra environment variables for the function (ENDPOINT_NAME is always set from endpoint_name)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
