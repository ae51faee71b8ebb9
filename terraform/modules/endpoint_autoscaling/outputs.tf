output "appautoscaling_target_resource_id" {
  description = "Scalable target id (endpoint/<endpoint>/variant/<variant>)."
  value       = aws_appautoscaling_target.this.resource_id
}

output "appautoscaling_target_min_capacity" {
  description = "Fewest instances behind the variant."
  value       = aws_appautoscaling_target.this.min_capacity
}

output "appautoscaling_target_max_capacity" {
  description = "Most instances behind the variant."
  value       = aws_appautoscaling_target.this.max_capacity
}

output "appautoscaling_policy_name" {
  description = "Name of the target tracking policy."
  value       = aws_appautoscaling_policy.this.name
}

output "appautoscaling_policy_arn" {
  description = "ARN of the target tracking policy."
  value       = aws_appautoscaling_policy.this.arn
}
