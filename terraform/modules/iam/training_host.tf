# ---------------------------------------------------------------------------------------------
# Training host (EC2): the training bucket access plus what the SSM Agent needs, no SSH.
# ---------------------------------------------------------------------------------------------

# No aws:SourceAccount/aws:SourceArn condition here. AWS's confused-deputy guidance is about a
# service acting for a resource that names the role (a job, a function); EC2 takes the role
# from an instance profile, which only a principal of this account allowed to iam:PassRole it
# can attach (PassRole cannot cross accounts), and EC2 documents neither key for instance
# roles, so a condition on them could stop the host from getting credentials at all. What
# guards the credentials on the host is IMDSv2 with a hop limit of 1 (training_host module).
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

# Instead of the AWS managed AmazonSSMManagedInstanceCore, which also grants
# ssm:GetParameter/ssm:GetParameters on every parameter of the account plus State Manager,
# inventory and patching actions this host does not use
# (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonSSMManagedInstanceCore.html),
# only what the SSM Agent calls for Run Command and Session Manager:
# - registration and heartbeat: ssm:UpdateInstanceInformation, and ssm:ListInstanceAssociations,
#   which the agent polls whichever features are in use;
# - Session Manager (and, on recent agents, Run Command) channels: the four ssmmessages actions
#   of AWS's minimal Session Manager instance profile
#   (https://docs.aws.amazon.com/systems-manager/latest/userguide/getting-started-create-iam-instance-profile.html);
# - Run Command delivery through the Message Delivery Service: the six ec2messages actions
#   (https://docs.aws.amazon.com/systems-manager/latest/userguide/systems-manager-setting-up-messageAPIs.html).
# The two ssm actions act on the calling instance and accept an EC2 instance ARN
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html):
# they are limited to this account's instances in this region (the instance id is not known
# before the instance exists, and it needs this role to start). The ssmmessages and ec2messages
# actions support no resource-level permissions at all: AWS requires Resource "*".
data "aws_iam_policy_document" "training_host_ssm" {
  statement {
    sid       = "RegisterManagedInstance"
    effect    = "Allow"
    actions   = ["ssm:ListInstanceAssociations", "ssm:UpdateInstanceInformation"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"]
  }

  statement {
    sid    = "SessionManagerChannels"
    effect = "Allow"
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "RunCommandMessages"
    effect = "Allow"
    actions = [
      "ec2messages:AcknowledgeMessage",
      "ec2messages:DeleteMessage",
      "ec2messages:FailMessage",
      "ec2messages:GetEndpoint",
      "ec2messages:GetMessages",
      "ec2messages:SendReply",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role" "training_host" {
  name                 = "${var.name_prefix}-training-host"
  description          = "Role of the dogops training host: training bucket prefixes and the SSM Agent."
  assume_role_policy   = data.aws_iam_policy_document.training_host_assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

# The host runs the same training as a SageMaker job, so it gets the same bucket access.
resource "aws_iam_role_policy" "training_host" {
  name   = "${var.name_prefix}-training-host"
  role   = aws_iam_role.training_host.id
  policy = data.aws_iam_policy_document.training_bucket_access.json
}

# Session Manager and Run Command replace SSH: the host's security group has no ingress at all.
resource "aws_iam_role_policy" "training_host_ssm" {
  name   = "${var.name_prefix}-training-host-ssm"
  role   = aws_iam_role.training_host.id
  policy = data.aws_iam_policy_document.training_host_ssm.json
}

resource "aws_iam_instance_profile" "training_host" {
  name = "${var.name_prefix}-training-host"
  role = aws_iam_role.training_host.name
  tags = var.tags
}
