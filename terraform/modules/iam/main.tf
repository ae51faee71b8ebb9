data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # Object ARNs under each prefix. The trailing "*" is the object key below the prefix: S3 has
  # no narrower way to name "every object in this folder".
  training_read_object_arns  = [for p in var.training_read_prefixes : "${var.bucket_arn}/${p}*"]
  training_write_object_arns = [for p in var.training_write_prefixes : "${var.bucket_arn}/${p}*"]
  training_list_prefixes     = [for p in var.training_read_prefixes : "${p}*"]
  endpoint_read_object_arns  = [for p in var.endpoint_read_prefixes : "${var.bucket_arn}/${p}*"]

  # SageMaker ARNs use the lowercased endpoint name, whatever case the endpoint was created with.
  endpoint_arn = "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}:endpoint/${lower(var.endpoint_name)}"

  lambda_function_arn  = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.lambda_function_name}"
  lambda_log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.lambda_function_name}"

  # SageMaker writes every training job (tuning trials included) to /aws/sagemaker/TrainingJobs
  # and an endpoint to /aws/sagemaker/Endpoints/<name>, one stream per job or instance; stream
  # names are only known at run time, hence the stream wildcard inside each fixed group.
  training_log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/TrainingJobs"
  endpoint_log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/Endpoints/${var.endpoint_name}"

  training_repository_arns = [
    for r in var.training_image_repositories : "arn:${local.partition}:ecr:${local.region}:${var.dlc_registry_account_id}:repository/${r}"
  ]
  endpoint_repository_arns = [
    for r in var.endpoint_image_repositories : "arn:${local.partition}:ecr:${local.region}:${var.dlc_registry_account_id}:repository/${r}"
  ]

  # Confused-deputy guard for service trust policies: the service may assume a role only while
  # acting for a resource of this account (and region). AWS documents both keys for service
  # principals acting on your behalf:
  # https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html
  sagemaker_source_arn = "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}:*"
}
