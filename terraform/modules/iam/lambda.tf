# ---------------------------------------------------------------------------------------------
# Lambda execution role: invoke one endpoint, write its own logs. Nothing else.
# ---------------------------------------------------------------------------------------------

# Lambda may assume the role only for this account's function of that name (any version or
# alias qualifier): the confused-deputy guard of the IAM User Guide
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html).
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.lambda_function_arn, "${local.lambda_function_arn}:*"]
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
