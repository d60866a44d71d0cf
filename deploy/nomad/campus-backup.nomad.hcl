# Nightly backups of every school (a periodic batch job): `campus tenant
# backup --all` writes one archive per tenant into a host volume, one folder
# per tenant, and keeps the newest var.keep of each. A failed tenant is
# reported (the job fails) and the others are still backed up.
#
#   nomad var put -out=none nomad/jobs/campus-backup \
#     mongodb_uri=@mongodb_uri_admin consul_token=@consul_management_token
#   nomad job run -var image=registry.example.org/campus:1.0 campus-backup.nomad.hcl
#
# The client that runs it needs the host volume (client config:
# host_volume "campus-backups" { path = "/srv/campus-backups" }), writable
# by uid 65532; copy that folder off the machine (restic, rclone, …): a
# backup on the database's own disk is not a backup. Restore one school:
# docs/PRODUCTION.md, "Backups".

variable "image" {
  type        = string
  description = "the Campus image (built from the repository's Dockerfile)"
  default     = "campus:latest"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "cron" {
  type        = string
  description = "when to back up (cron syntax, UTC)"
  default     = "15 2 * * *"
}

variable "keep" {
  type        = string
  description = "archives kept per tenant (--keep)"
  default     = "14"
}

variable "host_volume" {
  type        = string
  description = "the client host volume the archives go to"
  default     = "campus-backups"
}

job "campus-backup" {
  type        = "batch"
  datacenters = var.datacenters

  periodic {
    crons            = [var.cron]
    time_zone        = "UTC"
    prohibit_overlap = true
  }

  group "backup" {
    volume "backups" {
      type      = "host"
      source    = var.host_volume
      read_only = false
    }

    # One retry a few minutes later (a database restarting); then the
    # job is failed and shows so in Nomad.
    restart {
      attempts = 1
      delay    = "5m"
      mode     = "fail"
    }

    task "backup" {
      driver = "docker"

      volume_mount {
        volume      = "backups"
        destination = "/backups"
      }

      config {
        image           = var.image
        args            = ["tenant", "backup", "--all", "--dir", "/backups", "--keep", var.keep]
        readonly_rootfs = true
        cap_drop        = ["all"]
      }

      env {
        CAMPUS_REGISTRY        = "consul"
        CONSUL_HTTP_ADDR       = "${attr.unique.network.ip-address}:8500"
        CAMPUS_LOG_FORMAT      = "json"
        MONGODB_URI_FILE       = "${NOMAD_SECRETS_DIR}/mongodb_uri"
        CONSUL_HTTP_TOKEN_FILE = "${NOMAD_SECRETS_DIR}/consul_token"
      }

      # A MongoDB user that reads every tenant's database, and an operator
      # Consul token (it reads the registry; --consistency suspend writes
      # tenant states).
      template {
        destination = "${NOMAD_SECRETS_DIR}/mongodb_uri"
        change_mode = "noop"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-backup" }}{{ .mongodb_uri }}{{ end -}}
        EOT
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/consul_token"
        change_mode = "noop"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-backup" }}{{ .consul_token }}{{ end -}}
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
