variable "name" {
  type = string
}

resource "aws_s3_bucket" "this" {
  bucket = var.name
}

# Public access is left open: the finding.
resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = false
  ignore_public_acls      = false
  block_public_policy     = false
  restrict_public_buckets = false
}
