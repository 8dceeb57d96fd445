variable "db_public" {
  description = "Whether the database answers on a public address."
  type        = bool
  default     = false
}
