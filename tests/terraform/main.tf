# A small Terraform repository for salve's tests: every way a finding's resource can be declared.

provider "aws" {
  region = "us-east-1"
}

# A local module: its resources can be edited here.
module "logs" {
  source = "./modules/bucket"
  name   = "tf-logs-bucket"
}

# A registry module: its resources cannot be edited in this repository.
module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.8.1"
  name    = "main"
  cidr    = "10.0.0.0/16"
}

# Inline ingress.
resource "aws_security_group" "admin" {
  name        = "admin"
  description = "bastion access"
  vpc_id      = module.vpc.vpc_id

  ingress {
    description = "SSH from anywhere" # the finding
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# Rules declared as separate resources.
resource "aws_security_group" "app" {
  name   = "app"
  vpc_id = module.vpc.vpc_id
}

resource "aws_security_group_rule" "app_ssh" {
  type              = "ingress"
  security_group_id = aws_security_group.app.id
  from_port         = 22
  to_port           = 22
  protocol          = "tcp"
  cidr_blocks       = ["0.0.0.0/0"]
}

resource "aws_vpc_security_group_ingress_rule" "app_rdp" {
  security_group_id = aws_security_group.app.id
  from_port         = 3389
  to_port           = 3389
  ip_protocol       = "tcp"
  cidr_ipv4         = "0.0.0.0/0"
}

# One block, several instances.
resource "aws_security_group" "web" {
  for_each = toset(["blue", "green"])
  name     = "web-${each.key}"
  vpc_id   = module.vpc.vpc_id

  ingress {
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# A value that comes from a variable, set in terraform.tfvars.
resource "aws_db_instance" "main" {
  identifier          = "tf-main-db"
  engine              = "postgres"
  instance_class      = "db.t3.micro"
  allocated_storage   = 20
  publicly_accessible = var.db_public
}

# A bucket without a public access block: the fix adds one after it.
resource "aws_s3_bucket" "assets" {
  bucket = "tf-assets-bucket"
}

# One block, a bucket per environment.
resource "aws_s3_bucket" "per_env" {
  for_each = toset(["dev", "prod"])
  bucket   = "tf-${each.key}-bucket"
}

# A volume created unencrypted: encrypting it destroys and recreates it. The tests write its
# state entry, since the volume's ID is moto's.
resource "aws_ebs_volume" "data" {
  availability_zone = "us-east-1a"
  size              = 40

  tags = {
    Name = "data"
  }
}
