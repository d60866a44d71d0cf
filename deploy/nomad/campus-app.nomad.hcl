# The app of ONE tenant: run this file once per tenant, as its own job
# campus-app-<tenant>. (A parameterized job would make every tenant a batch
# job; a job per tenant keeps service semantics: rolling updates, health-
# based deployments, rescheduling, and a tenant stopped alone.)
#
#   nomad job run -var tenant=nairobi -var image=registry.example.org/campus:1.0 campus-app.nomad.hcl
#
# The tenant must exist in the registry (`campus tenant create`) and its
# MongoDB connection string, for a user allowed only its own database, must
# be in the Nomad Variable nomad/jobs/campus-app-<tenant>, item mongodb_uri.
# Only this job can read it. Steps: deploy/nomad/README.md.
#
# Nomad registers each instance in Consul as service campus-app with meta
# tenant=<tenant> and a /readyz check: the proxies route to it, Prometheus
# scrapes it. The app's own registration is therefore off (--register=false).

variable "tenant" {
  type        = string
  description = "the tenant this job serves (its name in the registry)"
}

variable "image" {
  type        = string
  description = "the Campus image (built from the repository's Dockerfile)"
  default     = "campus:latest"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "instances" {
  type        = number
  description = "app processes of this tenant (spread over clients)"
  default     = 2
}

job "campus-app" {
  id          = "campus-app-${var.tenant}"
  name        = "campus-app-${var.tenant}"
  type        = "service"
  datacenters = var.datacenters

  meta {
    tenant = var.tenant
  }

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "app" {
    count = var.instances

    spread {
      attribute = "${node.unique.id}"
    }

    network {
      port "http" {
        to = 8080
      }
    }

    service {
      name     = "campus-app"
      provider = "consul"
      port     = "http"
      tags     = ["campus", "tenant-${var.tenant}"]

      meta {
        tenant = var.tenant
      }

      check {
        name     = "app /readyz"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"

        check_restart {
          limit = 3
          grace = "60s"
        }
      }
    }

    task "app" {
      driver = "docker"

      config {
        image           = var.image
        ports           = ["http"]
        args            = ["app", "--tenant", var.tenant, "--register=false"]
        readonly_rootfs = true
        cap_drop        = ["all"]
      }

      env {
        CAMPUS_REGISTRY   = "consul"
        CONSUL_HTTP_ADDR  = "${attr.unique.network.ip-address}:8500"
        CAMPUS_LISTEN     = "0.0.0.0:8080"
        CAMPUS_LOG_FORMAT = "json"
        MONGODB_URI_FILE  = "${NOMAD_SECRETS_DIR}/mongodb_uri"
      }

      # The tenant's database credential, from Nomad Variables into the
      # task's private secrets directory; never in the job, env or args.
      template {
        destination = "${NOMAD_SECRETS_DIR}/mongodb_uri"
        change_mode = "restart"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-app-${var.tenant}" }}{{ .mongodb_uri }}{{ end -}}
        EOT
      }

      kill_timeout = "20s"

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }
}
