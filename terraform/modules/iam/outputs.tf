output "sagemaker_training_role_arn" {
  description = "ARN of the SageMaker execution role of training and tuning jobs (reads data/, code/, checkpoints/; writes models/, checkpoints/)."
  value       = aws_iam_role.sagemaker_training.arn
}

output "sagemaker_training_role_name" {
  description = "Name of the SageMaker training role."
  value       = aws_iam_role.sagemaker_training.name
}

output "sagemaker_endpoint_role_arn" {
  description = "ARN of the SageMaker execution role of the endpoint's model (reads models/ only)."
  value       = aws_iam_role.sagemaker_endpoint.arn
}

output "sagemaker_endpoint_role_name" {
  description = "Name of the SageMaker endpoint role."
  value       = aws_iam_role.sagemaker_endpoint.name
}

output "lambda_role_arn" {
  description = "ARN of the Lambda execution role (sagemaker:InvokeEndpoint on one endpoint plus its own logs)."
  value       = aws_iam_role.lambda.arn
}

output "lambda_role_name" {
  description = "Name of the Lambda execution role."
  value       = aws_iam_role.lambda.name
}

output "training_host_role_arn" {
  description = "ARN of the training host's role."
  value       = aws_iam_role.training_host.arn
}

output "training_host_instance_profile_name" {
  description = "Name of the training host's instance profile."
  value       = aws_iam_instance_profile.training_host.name
}

output "invoke_endpoint_arn" {
  description = "The only endpoint ARN the Lambda role may invoke."
  value       = local.endpoint_arn
}
