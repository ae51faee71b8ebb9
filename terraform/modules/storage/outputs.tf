output "s3_bucket_name" {
  description = "Name (id) of the artifact bucket."
  value       = aws_s3_bucket.this.id
}

output "s3_bucket_arn" {
  description = "ARN of the artifact bucket."
  value       = aws_s3_bucket.this.arn
}

output "s3_bucket_region" {
  description = "Region the artifact bucket lives in."
  value       = aws_s3_bucket.this.region
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the bucket; roles that read or write objects need kms:Decrypt and kms:GenerateDataKey on it."
  value       = aws_kms_key.this.arn
}

output "kms_key_alias_name" {
  description = "Alias of the bucket's KMS key."
  value       = aws_kms_alias.this.name
}
