data "archive_file" "this" {
  type        = "zip"
  source_dir  = var.source_dir
  output_path = "${path.root}/build/${var.function_name}.zip"
  excludes    = ["__pycache__", "**/__pycache__/**", "**/*.pyc"]
}

resource "aws_cloudwatch_log_group" "this" {
  # checkov:skip=CKV_AWS_158:CloudWatch Logs already encrypts at rest with a service key; the log holds request metadata only, no secrets
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_in_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_116:Invoked synchronously only (Function URL/API); errors go back to the caller, so a DLQ would never receive anything
  # checkov:skip=CKV_AWS_117:Lambda calls the public SageMaker runtime API; no VPC needed
  # checkov:skip=CKV_AWS_173:The only environment variable is the endpoint name, not a secret; Lambda encrypts it at rest with its service key
  # checkov:skip=CKV_AWS_272:The package is zipped by Terraform from the reviewed repository; no signing profile exists for this stack
  function_name    = var.function_name
  description      = "Dog breed classifier front end: forwards images to the ${var.endpoint_name} SageMaker endpoint."
  role             = var.role_arn
  handler          = var.handler
  runtime          = var.runtime
  architectures    = ["x86_64"]
  memory_size      = var.memory_size
  timeout          = var.timeout
  filename         = data.archive_file.this.output_path
  source_code_hash = data.archive_file.this.output_base64sha256

  # Provisioned concurrency can only be set on a published version or an alias pointing at one
  # (an unpublished $LATEST races with it: hashicorp/terraform-provider-aws#12120), so every code
  # change publishes a new version and the alias below follows it.
  publish = true

  # Reserving 100 fails unless the account's concurrency limit still leaves at least 100
  # unreserved afterwards (new accounts often have a limit of 10 or 50: request an increase).
  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = merge(var.environment_variables, {
      ENDPOINT_NAME = var.endpoint_name
    })
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags = var.tags

  # Create the log group (with its retention) before Lambda can create it implicitly.
  depends_on = [aws_cloudwatch_log_group.this]
}

# The alias has no routing_config on purpose: an alias with weighted routing (two versions)
# cannot carry provisioned concurrency.
resource "aws_lambda_alias" "this" {
  name             = var.alias_name
  description      = "Latest published version of ${var.function_name}; carries the provisioned concurrency."
  function_name    = aws_lambda_function.this.function_name
  function_version = aws_lambda_function.this.version
}

resource "aws_lambda_provisioned_concurrency_config" "this" {
  # AWS rejects a provisioned concurrency of 0: no config at all in that case.
  count = var.provisioned_concurrency > 0 ? 1 : 0

  function_name                     = aws_lambda_function.this.function_name
  qualifier                         = aws_lambda_alias.this.name
  provisioned_concurrent_executions = var.provisioned_concurrency

  lifecycle {
    precondition {
      condition     = var.provisioned_concurrency <= var.reserved_concurrency
      error_message = "provisioned_concurrency cannot exceed reserved_concurrency."
    }
  }
}
