output "lambda_function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "lambda_function_arn" {
  description = "Unqualified ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "lambda_function_version" {
  description = "Latest published version of the function (the one the alias points at)."
  value       = aws_lambda_function.this.version
}

output "lambda_alias_name" {
  description = "Name of the alias to invoke (it carries the provisioned concurrency)."
  value       = aws_lambda_alias.this.name
}

output "lambda_alias_arn" {
  description = "ARN of the alias (the qualified function ARN clients should invoke)."
  value       = aws_lambda_alias.this.arn
}

output "lambda_reserved_concurrency" {
  description = "Reserved concurrent executions of the function."
  value       = aws_lambda_function.this.reserved_concurrent_executions
}

output "lambda_provisioned_concurrency" {
  description = "Provisioned concurrent executions on the alias (0 when none is configured)."
  value       = try(aws_lambda_provisioned_concurrency_config.this[0].provisioned_concurrent_executions, 0)
}

output "lambda_log_group_name" {
  description = "Name of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.name
}
