# ---------------------------------------------------------------------------------------------
# Two SageMaker execution roles: one for training jobs, one for the internet-facing endpoint.
# A compromised endpoint container can then only read models/, never overwrite training code,
# data, checkpoints or the models it serves.
# ---------------------------------------------------------------------------------------------

# SageMaker's confused-deputy guidance for execution roles: aws:SourceAccount plus an
# aws:SourceArn pattern naming this account's SageMaker resources
# (https://docs.aws.amazon.com/sagemaker/latest/dg/security-confused-deputy-prevention.html).
data "aws_iam_policy_document" "sagemaker_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.sagemaker_source_arn]
    }
  }
}

# Bucket access of training (SageMaker jobs and the EC2 training host): read the data set, the
# code tarball and earlier checkpoints (a restarted job resumes from them); write the model and
# new checkpoints.
data "aws_iam_policy_document" "training_bucket_access" {
  statement {
    sid       = "ReadTrainingInputs"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = local.training_read_object_arns
  }

  statement {
    sid       = "WriteTrainingOutputs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = local.training_write_object_arns
  }

  statement {
    sid       = "ListTrainingInputs"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.training_list_prefixes
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

data "aws_iam_policy_document" "sagemaker_training" {
  source_policy_documents = [data.aws_iam_policy_document.training_bucket_access.json]

  statement {
    sid       = "WriteTrainingJobLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = [local.training_log_group_arn, "${local.training_log_group_arn}:log-stream:*"]
  }

  statement {
    sid     = "EcrLogin"
    effect  = "Allow"
    actions = ["ecr:GetAuthorizationToken"]
    # ecr:GetAuthorizationToken supports no resource-level permissions: AWS requires "*".
    resources = ["*"]
  }

  statement {
    sid       = "PullTrainingImage"
    effect    = "Allow"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = local.training_repository_arns
  }

  statement {
    sid     = "PublishTrainingJobMetrics"
    effect  = "Allow"
    actions = ["cloudwatch:PutMetricData"]
    # cloudwatch:PutMetricData supports no resource-level permissions: AWS requires "*". The
    # namespace condition keeps the role to the training jobs' own namespace.
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/TrainingJobs"]
    }
  }
}

resource "aws_iam_role" "sagemaker_training" {
  name                 = "${var.name_prefix}-sagemaker-training"
  description          = "SageMaker execution role of dogops training and tuning jobs."
  assume_role_policy   = data.aws_iam_policy_document.sagemaker_assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "sagemaker_training" {
  name   = "${var.name_prefix}-sagemaker-training"
  role   = aws_iam_role.sagemaker_training.id
  policy = data.aws_iam_policy_document.sagemaker_training.json
}

# The endpoint's model containers: read the model artifact, pull the inference image, write
# their own logs and metrics. Nothing is written to the bucket.
data "aws_iam_policy_document" "sagemaker_endpoint" {
  statement {
    sid       = "ReadModels"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = local.endpoint_read_object_arns
  }

  statement {
    sid       = "DecryptModels"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.bucket_kms_key_arn]

    # Only through S3: the key cannot be used directly by this role.
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "WriteEndpointLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = [local.endpoint_log_group_arn, "${local.endpoint_log_group_arn}:log-stream:*"]
  }

  statement {
    sid     = "EcrLogin"
    effect  = "Allow"
    actions = ["ecr:GetAuthorizationToken"]
    # ecr:GetAuthorizationToken supports no resource-level permissions: AWS requires "*".
    resources = ["*"]
  }

  statement {
    sid       = "PullInferenceImage"
    effect    = "Allow"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = local.endpoint_repository_arns
  }

  statement {
    sid     = "PublishEndpointMetrics"
    effect  = "Allow"
    actions = ["cloudwatch:PutMetricData"]
    # cloudwatch:PutMetricData supports no resource-level permissions: AWS requires "*". The
    # namespace condition keeps the role to the endpoints' own namespace.
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/Endpoints"]
    }
  }
}

resource "aws_iam_role" "sagemaker_endpoint" {
  name                 = "${var.name_prefix}-sagemaker-endpoint"
  description          = "SageMaker execution role of the ${var.endpoint_name} endpoint's model: reads models/ only."
  assume_role_policy   = data.aws_iam_policy_document.sagemaker_assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "sagemaker_endpoint" {
  name   = "${var.name_prefix}-sagemaker-endpoint"
  role   = aws_iam_role.sagemaker_endpoint.id
  policy = data.aws_iam_policy_document.sagemaker_endpoint.json
}
