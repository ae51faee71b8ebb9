# Single source of truth for the dev environment. Every number the mission fixes lives here;
# variables.tf declares them without defaults and main.tf only passes them on.

region      = "us-east-1"
environment = "dev"
name_prefix = "dogops-dev"

# Storage
bucket_name_prefix = "dogops-dev-artifacts-"

# Lambda front end
lambda_function_name         = "dogops-dev-classifier"
lambda_source_dir            = "../../../lambda_src" # relative to terraform/envs/dev
lambda_alias_name            = "live"
reserved_concurrency         = 100
provisioned_concurrency      = 3
lambda_log_retention_in_days = 365

# SageMaker endpoint (created by `ops promote-endpoint`) and its autoscaling
endpoint_name                   = "dog-breed-classifier"
variant_name                    = "AllTraffic"
enable_endpoint_autoscaling     = true # apply after the first `ops promote-endpoint`
min_capacity                    = 1
max_capacity                    = 4
target_invocations_per_instance = 70
scale_in_cooldown               = 30
scale_out_cooldown              = 300

# Training host (created only when the three values below are set)
training_instance_type = "m5.2xlarge"
# training_host_subnet_id   = "subnet-0123456789abcdef0"
# training_host_repo_url    = "https://github.com/<org>/dogops.git"
# training_host_repo_commit = "<40-character commit id: git rev-parse HEAD>"
