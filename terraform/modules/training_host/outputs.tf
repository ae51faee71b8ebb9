output "instance_id" {
  description = "ID of the training host (target of `aws ssm start-session`)."
  value       = aws_instance.this.id
}

output "instance_private_ip" {
  description = "Private IP address of the training host."
  value       = aws_instance.this.private_ip
}

output "ami_id" {
  description = "Deep Learning AMI the host was launched from (kept on later applies, see ignore_changes)."
  value       = aws_instance.this.ami
}

output "security_group_id" {
  description = "ID of the host's security group (no ingress, egress 443 only)."
  value       = aws_security_group.this.id
}

output "instance_install_dir" {
  description = "Path on the host of the checked-out project (the working directory for training commands sent through SSM)."
  value       = var.install_dir
}

output "instance_venv_dir" {
  description = "Path on the host of the project's virtual environment (run <instance_venv_dir>/bin/python)."
  value       = local.venv_dir
}
