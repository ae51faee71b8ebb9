# Consumed by `ops` (terraform output -json): keep these names stable.

output "region" {
  description = "AWS region of the environment."
  value       = var.region
}

output "s3_bucket_name" {
  description = "Artifact bucket (prefixes data/, models/, checkpoints/, code/)."
  value       = module.storage.s3_bucket_name
}

output "kms_key_arn" {
  description = "KMS key that encrypts the artifact bucket."
  value       = module.storage.kms_key_arn
}

output "sagemaker_training_role_arn" {
  description = "SageMaker execution role of training and tuning jobs (RoleArn of `ops train`)."
  value       = module.iam.sagemaker_training_role_arn
}

# Kept for the ops CLI, which reads this name as the RoleArn of the jobs it starts: it is the
# training role, never the endpoint's.
output "sagemaker_role_arn" {
  description = "Same as sagemaker_training_role_arn (the name `ops train` reads)."
  value       = module.iam.sagemaker_training_role_arn
}

output "sagemaker_endpoint_role_arn" {
  description = "SageMaker execution role for the endpoint's model (ExecutionRoleArn of `ops promote-endpoint`): reads models/ only."
  value       = module.iam.sagemaker_endpoint_role_arn
}

output "lambda_function_name" {
  description = "Name of the Lambda function in front of the endpoint."
  value       = module.lambda_function.lambda_function_name
}

output "lambda_alias_name" {
  description = "Alias to invoke (carries the provisioned concurrency)."
  value       = module.lambda_function.lambda_alias_name
}

output "lambda_alias_arn" {
  description = "Qualified ARN of the alias."
  value       = module.lambda_function.lambda_alias_arn
}

output "endpoint_name" {
  description = "SageMaker endpoint name `ops promote-endpoint` must create or update."
  value       = var.endpoint_name
}

output "variant_name" {
  description = "Production variant name `ops promote-endpoint` must use so autoscaling finds it."
  value       = var.variant_name
}

output "training_host_instance_id" {
  description = "Instance id of the training host (null when no subnet, repo URL or commit is set)."
  value       = one(module.training_host[*].instance_id)
}

output "training_host_install_dir" {
  description = "Project checkout on the training host: the directory SSM commands cd into (null without a host)."
  value       = one(module.training_host[*].instance_install_dir)
}

output "training_host_venv_dir" {
  description = "The project's virtual environment on the training host; run <dir>/bin/python (null without a host)."
  value       = one(module.training_host[*].instance_venv_dir)
}

output "endpoint_autoscaling_resource_id" {
  description = "Scalable target id of the endpoint variant (null while autoscaling is disabled)."
  value       = one(module.endpoint_autoscaling[*].appautoscaling_target_resource_id)
}
