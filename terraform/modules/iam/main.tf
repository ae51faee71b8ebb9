data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # Object ARNs under each allowed prefix. The trailing "*" is the object key below the
  # prefix: S3 has no narrower way to name "every object in this folder".
  bucket_object_arns = [for p in var.bucket_prefixes : "${var.bucket_arn}/${p}*"]
  bucket_list_prefix = [for p in var.bucket_prefixes : "${p}*"]

  # SageMaker ARNs use the lowercased endpoint name, whatever case the endpoint was created with.
  endpoint_arn = "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}:endpoint/${lower(var.endpoint_name)}"

  lambda_log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.lambda_function_name}"

  # SageMaker creates /aws/sagemaker/TrainingJobs, /aws/sagemaker/Endpoints/<name>, ... and one
  # stream per job or instance; their names are only known at run time, hence the wildcards.
  sagemaker_log_group_arns = [
    "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/*",
    "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/*:log-stream:*",
  ]

  dlc_repository_arns = [
    for r in var.dlc_repositories : "arn:${local.partition}:ecr:${local.region}:${var.dlc_registry_account_id}:repository/${r}"
  ]
}

# ---------------------------------------------------------------------------------------------
# Shared statements: the artifact bucket, limited to its prefixes, and its KMS key.
# ---------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "bucket_access" {
  statement {
    sid       = "ReadWriteAllowedPrefixes"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = local.bucket_object_arns
  }

  statement {
    sid       = "ListAllowedPrefixes"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.bucket_list_prefix
    }
  }

  statement {
    sid       = "UseBucketKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.bucket_kms_key_arn]

    # Only through S3: the key cannot be used directly by this role.
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# SageMaker execution role (training jobs and the endpoint's model containers).
# ---------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "sagemaker_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "sagemaker" {
  source_policy_documents = [data.aws_iam_policy_document.bucket_access.json]

  statement {
    sid       = "WriteSageMakerLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = local.sagemaker_log_group_arns
  }

  statement {
    sid     = "EcrLogin"
    effect  = "Allow"
    actions = ["ecr:GetAuthorizationToken"]
    # ecr:GetAuthorizationToken supports no resource-level permissions: AWS requires "*".
    resources = ["*"]
  }

  statement {
    sid       = "PullDeepLearningContainers"
    effect    = "Allow"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = local.dlc_repository_arns
  }

  statement {
    sid     = "PublishSageMakerMetrics"
    effect  = "Allow"
    actions = ["cloudwatch:PutMetricData"]
    # cloudwatch:PutMetricData supports no resource-level permissions: AWS requires "*". The
    # namespace condition keeps the role to SageMaker's own metric namespaces.
    resources = ["*"]

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/*"]
    }
  }
}

resource "aws_iam_role" "sagemaker" {
  name                 = "${var.name_prefix}-sagemaker"
  description          = "SageMaker execution role for dogops training jobs and the endpoint."
  assume_role_policy   = data.aws_iam_policy_document.sagemaker_assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "sagemaker" {
  name   = "${var.name_prefix}-sagemaker"
  role   = aws_iam_role.sagemaker.id
  policy = data.aws_iam_policy_document.sagemaker.json
}

# ---------------------------------------------------------------------------------------------
# Lambda execution role: invoke one endpoint, write its own logs. Nothing else.
# ---------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid       = "InvokeEndpoint"
    effect    = "Allow"
    actions   = ["sagemaker:InvokeEndpoint"]
    resources = [local.endpoint_arn]
  }

  statement {
    sid     = "WriteOwnLogs"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    # The log group is created by Terraform (lambda_function module); Lambda names one stream
    # per execution environment at run time, hence the stream wildcard inside this group.
    resources = ["${local.lambda_log_group_arn}:log-stream:*"]
  }
}

resource "aws_iam_role" "lambda" {
  name                 = "${var.name_prefix}-lambda"
  description          = "Execution role of the ${var.lambda_function_name} Lambda function."
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "lambda" {
  name   = "${var.name_prefix}-lambda"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# ---------------------------------------------------------------------------------------------
# Training host (EC2): bucket prefixes plus Session Manager, no SSH.
# ---------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "training_host_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "training_host" {
  name                 = "${var.name_prefix}-training-host"
  description          = "Role of the dogops training host: artifact bucket prefixes and SSM Session Manager."
  assume_role_policy   = data.aws_iam_policy_document.training_host_assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "training_host" {
  name   = "${var.name_prefix}-training-host"
  role   = aws_iam_role.training_host.id
  policy = data.aws_iam_policy_document.bucket_access.json
}

# Session Manager replaces SSH: the host's security group has no ingress at all.
resource "aws_iam_role_policy_attachment" "training_host_ssm" {
  role       = aws_iam_role.training_host.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "training_host" {
  name = "${var.name_prefix}-training-host"
  role = aws_iam_role.training_host.name
  tags = var.tags
}
