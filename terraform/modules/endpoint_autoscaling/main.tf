locals {
  resource_id = "endpoint/${var.endpoint_name}/variant/${var.variant_name}"
}

# The endpoint is created and updated by `ops promote-endpoint`, not by Terraform: the AWS
# provider's endpoint resource resets the instance count on every apply
# (hashicorp/terraform-provider-aws#48990). Registering the target therefore needs the
# endpoint to exist already.
resource "aws_appautoscaling_target" "this" {
  service_namespace  = "sagemaker"
  resource_id        = local.resource_id
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity

  lifecycle {
    precondition {
      condition     = var.min_capacity <= var.max_capacity
      error_message = "min_capacity cannot exceed max_capacity."
    }
  }
}

# Target tracking on invocations per instance. The cooldowns are the reverse of AWS's example
# (600 s in / 30 s out): after a scale-out only a larger scale-out proceeds for 300 s, while
# scale-ins can follow each other every 30 s (see README.md).
resource "aws_appautoscaling_policy" "this" {
  name               = "${var.endpoint_name}-${var.variant_name}-invocations"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.target_invocations_per_instance
    scale_in_cooldown  = var.scale_in_cooldown
    scale_out_cooldown = var.scale_out_cooldown
    disable_scale_in   = var.disable_scale_in

    predefined_metric_specification {
      predefined_metric_type = "SageMakerVariantInvocationsPerInstance"
    }
  }
}
