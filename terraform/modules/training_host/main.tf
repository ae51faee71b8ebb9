locals {
  # The project's virtual environment: user data creates it, `ops train --on ec2` runs its python.
  venv_dir = "${var.install_dir}/.venv"
}

data "aws_ami" "this" {
  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = [var.ami_name_filter]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

data "aws_subnet" "this" {
  id = var.subnet_id
}

# No ingress rules at all: operators connect through SSM Session Manager, which the agent
# reaches over outbound HTTPS. Egress is HTTPS only (SSM, S3, SageMaker APIs, git, PyPI);
# DNS and NTP go to the VPC's Amazon resolvers, which security groups do not filter.
resource "aws_security_group" "this" {
  name_prefix = "${var.name}-"
  description = "dogops training host: no inbound; outbound HTTPS only"
  vpc_id      = data.aws_subnet.this.vpc_id

  # An explicit empty list removes any ingress rule added outside Terraform.
  ingress = []

  egress {
    description = "HTTPS to AWS APIs (SSM, S3, SageMaker), git and PyPI"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_instance" "this" {
  ami                         = data.aws_ami.this.id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = [aws_security_group.this.id]
  iam_instance_profile        = var.iam_instance_profile
  associate_public_ip_address = var.associate_public_ip_address
  monitoring                  = true
  ebs_optimized               = true

  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    repo_url    = var.repo_url
    repo_commit = var.repo_commit
    install_dir = var.install_dir
    venv_dir    = local.venv_dir
  })
  user_data_replace_on_change = true

  # IMDSv2 only; a hop limit of 1 keeps containers on the host away from the role credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    kms_key_id            = var.root_volume_kms_key_id
    delete_on_termination = true
  }

  tags        = merge(var.tags, { Name = var.name })
  volume_tags = merge(var.tags, { Name = var.name })

  lifecycle {
    # A newer Deep Learning AMI must not replace a host in the middle of a training run.
    ignore_changes = [ami]
  }
}
