variable "endpoint_name" {
  description = "Name of the SageMaker endpoint to scale. It must already exist: `ops promote-endpoint` creates it, not Terraform."
  type        = string
}

variable "variant_name" {
  description = "Production variant of the endpoint to scale."
  type        = string
  default     = "AllTraffic"
}

variable "min_capacity" {
  description = "Fewest instances behind the variant."
  type        = number

  validation {
    condition     = var.min_capacity >= 1 && floor(var.min_capacity) == var.min_capacity
    error_message = "min_capacity must be a whole number >= 1 (a real-time endpoint cannot scale to zero)."
  }
}

variable "max_capacity" {
  description = "Most instances behind the variant (check the account's instance quota for the endpoint's type)."
  type        = number

  validation {
    condition     = var.max_capacity >= 1 && floor(var.max_capacity) == var.max_capacity
    error_message = "max_capacity must be a whole number >= 1."
  }
}

variable "target_invocations_per_instance" {
  description = "Target of SageMakerVariantInvocationsPerInstance: average invocations per instance per minute the policy steers towards."
  type        = number

  validation {
    condition     = var.target_invocations_per_instance > 0
    error_message = "target_invocations_per_instance must be > 0."
  }
}

variable "scale_in_cooldown" {
  description = "Seconds after a scale-in before another scale-in may start."
  type        = number

  validation {
    condition     = var.scale_in_cooldown >= 0
    error_message = "scale_in_cooldown must be >= 0."
  }
}

variable "scale_out_cooldown" {
  description = "Seconds after a scale-out during which only a larger scale-out may start."
  type        = number

  validation {
    condition     = var.scale_out_cooldown >= 0
    error_message = "scale_out_cooldown must be >= 0."
  }
}

variable "disable_scale_in" {
  description = "When true the policy only scales out; scale-in is left to an operator."
  type        = bool
  default     = false
}
