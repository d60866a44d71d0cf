# The app of ONE tenant: run this file once per tenant, as its own job
# campus-app-<tenant>. (A parameterized job would make every tenant a batch
# job; a job per tenant keeps service semantics: rolling updates, health-
# based deployments, rescheduling, and a tenant stopped alone.)
#
#   CONSUL_HTTP_TOKEN=$(campus token tenant nairobi) \
#     nomad job run -var tenant=nairobi -var image=registry.example.org/campus:1.0 campus-app.nomad.hcl
#
# The tenant must exist in the registry (`campus tenant create`). The Nomad
# Variable nomad/jobs/campus-app-<tenant>, which only this job can read, holds
# its MongoDB connection string (item mongodb_uri, for a user allowed only its
# own database) and its Consul ACL token (item consul_token, from `campus
# token tenant <tenant>`). Steps: deploy/nomad/README.md.
#
# Nomad registers each instance in Consul as service campus-app-<tenant>
# (tag campus-app) with a /readyz check: the proxies route to it, Prometheus
# scrapes it. Consul ACLs allow that name only to the tenant's own token, so
# the job is submitted with it (CONSUL_HTTP_TOKEN above, Nomad's
# -consul-token: Nomad checks it may write the job's services). The app's own
# registration is off (--register=false); it reads its tenant record with
# the same token.

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

variable "memory" {
  type        = number
  description = "memory limit of each app process in MiB: campus dev's --memory default, or the tenant's own (campus tenant set --memory)"
  default     = 512
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
      name     = "campus-app-${var.tenant}"
      provider = "consul"
      port     = "http"
      tags     = ["campus-app"]

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
        CONSUL_HTTP_TOKEN_FILE = "${NOMAD_SECRETS_DIR}/consul_token"
        # Below the memory limit, as campus dev sets it (90%): the Go
        # runtime collects harder before the kernel kills the task.
        GOMEMLIMIT = "${floor(var.memory * 0.9)}MiB"
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

      # The tenant's Consul ACL token, the same way.
      template {
        destination = "${NOMAD_SECRETS_DIR}/consul_token"
        change_mode = "restart"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-app-${var.tenant}" }}{{ .consul_token }}{{ end -}}
        EOT
      }

      kill_timeout = "20s"

      # The memory budget (issue 20), as campus dev's supervisor applies
      # it: a hard limit per app, the same CPU share for every school.
      resources {
        cpu    = 300
        memory = var.memory
      }
    }
  }
}
