# The Campus proxy on every Nomad client (a system job): routes each request
# by its Host header to the healthy app instances of exactly one tenant,
# which it finds in Consul. Stateless; put a TCP load balancer (or DNS) in
# front of the clients' ports 80 and 443 (HTTPS terminates in the proxy).
#
#   nomad job run -var image=registry.example.org/campus:1.0 campus-proxy.nomad.hcl
#
# Assumes a Consul agent on every client, reachable from containers at the
# client's address on port 8500 (Consul's client_addr includes it). Guide:
# deploy/nomad/README.md.

variable "image" {
  type        = string
  description = "the Campus image (built from the repository's Dockerfile)"
  default     = "campus:latest"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "http_port" {
  type        = number
  description = "port of plain HTTP on every client: ACME HTTP-01 challenges, and a redirect to HTTPS"
  default     = 80
}

variable "https_port" {
  type        = number
  description = "port the proxy serves tenants on over HTTPS, on every client"
  default     = 443
}

variable "acme_directory" {
  type        = string
  description = "ACME directory certificates are ordered from, on demand, for registered school hosts only"
  default     = "https://acme-v02.api.letsencrypt.org/directory"
}

variable "acme_email" {
  type        = string
  description = "contact of the ACME account (expiry and policy notices)"
  default     = ""
}

variable "admin_port" {
  type        = number
  description = "port of /metrics, /healthz and /routes: keep it private (firewall)"
  default     = 8001
}

job "campus-proxy" {
  type        = "system"
  datacenters = var.datacenters

  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "2m"
  }

  group "proxy" {
    network {
      port "http" {
        static = var.http_port
        to     = 8000
      }
      port "https" {
        static = var.https_port
        to     = 8443
      }
      port "admin" {
        static = var.admin_port
        to     = 8001
      }
    }

    # Prometheus finds the proxies through this service and scrapes
    # metrics_port (deploy/prometheus/prometheus.yml, job campus-proxy).
    # Nomad registers it, so the proxy's own registration is off
    # (--register=false).
    service {
      name     = "campus-proxy"
      provider = "consul"
      port     = "http"
      tags     = ["campus"]

      meta {
        metrics_port = "${NOMAD_HOST_PORT_admin}"
      }

      check {
        name     = "proxy /healthz"
        type     = "http"
        port     = "admin"
        path     = "/healthz"
        interval = "10s"
        timeout  = "3s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    task "proxy" {
      driver = "docker"

      config {
        image           = var.image
        ports           = ["http", "https", "admin"]
        args            = ["proxy", "--listen", "0.0.0.0:8000", "--tls-listen", "0.0.0.0:8443", "--admin-listen", "0.0.0.0:8001", "--register=false"]
        readonly_rootfs = true
        cap_drop        = ["all"]
      }

      env {
        CAMPUS_REGISTRY        = "consul"
        CONSUL_HTTP_ADDR       = "${attr.unique.network.ip-address}:8500"
        CAMPUS_LOG_FORMAT      = "json"
        CONSUL_HTTP_TOKEN_FILE = "${NOMAD_SECRETS_DIR}/consul_token"
        # HTTPS: certificates on demand, kept in Consul KV (every proxy
        # shares them; Consul locks make one order per certificate).
        CAMPUS_ACME_DIRECTORY = var.acme_directory
        CAMPUS_ACME_EMAIL     = var.acme_email
      }

      # The proxies' Consul ACL token (`campus token proxy`): reads the
      # registry, writes nothing of it but the certificate store.
      template {
        destination = "${NOMAD_SECRETS_DIR}/consul_token"
        change_mode = "restart"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-proxy" }}{{ .consul_token }}{{ end -}}
        EOT
      }

      kill_timeout = "20s"

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
