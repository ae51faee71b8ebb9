# Wiring only: every value comes from terraform.tfvars or from another module's outputs.

module "storage" {
  source = "../../modules/storage"

  bucket_name_prefix = var.bucket_name_prefix
}

module "iam" {
  source = "../../modules/iam"

  name_prefix          = var.name_prefix
  bucket_arn           = module.storage.s3_bucket_arn
  bucket_kms_key_arn   = module.storage.kms_key_arn
  endpoint_name        = var.endpoint_name
  lambda_function_name = var.lambda_function_name
}

module "lambda_function" {
  source = "../../modules/lambda_function"

  function_name           = var.lambda_function_name
  source_dir              = var.lambda_source_dir
  role_arn                = module.iam.lambda_role_arn
  endpoint_name           = var.endpoint_name
  alias_name              = var.lambda_alias_name
  reserved_concurrency    = var.reserved_concurrency
  provisioned_concurrency = var.provisioned_concurrency
  log_retention_in_days   = var.lambda_log_retention_in_days
}

module "training_host" {
  source = "../../modules/training_host"
  count  = var.training_host_subnet_id != null && var.training_host_repo_url != null && var.training_host_repo_commit != null ? 1 : 0

  name                 = "${var.name_prefix}-training-host"
  subnet_id            = var.training_host_subnet_id
  iam_instance_profile = module.iam.training_host_instance_profile_name
  instance_type        = var.training_instance_type
  repo_url             = var.training_host_repo_url
  repo_commit          = var.training_host_repo_commit
}

# The endpoint itself is created by `ops promote-endpoint` (the provider's endpoint resource
# resets instance counts: hashicorp/terraform-provider-aws#48990). Apply this module only
# once the endpoint exists, i.e. after the first `ops promote-endpoint`.
module "endpoint_autoscaling" {
  source = "../../modules/endpoint_autoscaling"
  count  = var.enable_endpoint_autoscaling ? 1 : 0

  endpoint_name                   = var.endpoint_name
  variant_name                    = var.variant_name
  min_capacity                    = var.min_capacity
  max_capacity                    = var.max_capacity
  target_invocations_per_instance = var.target_invocations_per_instance
  scale_in_cooldown               = var.scale_in_cooldown
  scale_out_cooldown              = var.scale_out_cooldown
}
