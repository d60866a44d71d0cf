# The Campus control API (/api/v1/) and operators' console (/console/)
# (`campus control`, issue 26): one instance, opened with operator tokens
# (`campus operator token create NAME`). It acts with the operator's
# credentials — the Consul token that manages tenants and their ACL tokens,
# and the admin database credential — so it must never be reachable from
# the internet: its port is bound to a private host network (var.host_network,
# a `host_network` of the clients' configuration, e.g. a VPN or the
# operators' VLAN) and it serves HTTPS itself with a certificate from the
# Nomad variable. Guide: docs/PRODUCTION.md, "The control API and console".
#
#   nomad var put nomad/jobs/campus-control consul_token=@operator-token mongodb_uri=@admin-uri \
#     tls_cert=@control.crt tls_key=@control.key
#   nomad job run -var image=registry.example.org/campus:1.0 -var host_network=private campus-control.nomad.hcl

variable "image" {
  type        = string
  description = "the Campus image (built from the repository's Dockerfile)"
  default     = "campus:latest"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "host_network" {
  type        = string
  description = "the clients' host network the console listens on: a private one, never the public interface"
  default     = "private"
}

variable "port" {
  type        = number
  description = "port of the control API and console (HTTPS)"
  default     = 8002
}

variable "public_url" {
  type        = string
  description = "scheme and port people reach the schools at, for the invite links (e.g. https://school.example)"
  default     = "https://localhost"
}

job "campus-control" {
  type        = "service"
  datacenters = var.datacenters

  group "control" {
    count = 1

    network {
      port "control" {
        static       = var.port
        to           = 8002
        host_network = var.host_network
      }
    }

    service {
      name     = "campus-control"
      provider = "consul"
      port     = "control"
      tags     = ["campus"]

      check {
        name            = "control /healthz"
        type            = "http"
        protocol        = "https"
        tls_skip_verify = true
        port            = "control"
        path            = "/healthz"
        interval        = "10s"
        timeout         = "3s"
      }
    }

    task "control" {
      driver = "docker"

      config {
        image           = var.image
        ports           = ["control"]
        args            = ["control", "--listen", "0.0.0.0:8002"]
        readonly_rootfs = true
        cap_drop        = ["all"]
      }

      env {
        CAMPUS_REGISTRY        = "consul"
        CONSUL_HTTP_ADDR       = "${attr.unique.network.ip-address}:8500"
        CAMPUS_LOG_FORMAT      = "json"
        CAMPUS_PUBLIC_URL      = var.public_url
        CONSUL_HTTP_TOKEN_FILE = "${NOMAD_SECRETS_DIR}/consul_token"
        MONGODB_URI_FILE       = "${NOMAD_SECRETS_DIR}/mongodb_uri"
        CAMPUS_TLS_CERT_FILE   = "${NOMAD_SECRETS_DIR}/tls.crt"
        CAMPUS_TLS_KEY_FILE    = "${NOMAD_SECRETS_DIR}/tls.key"
        # The proxies are found through Consul (service campus-proxy, its
        # admin port) for the counters the console shows.
      }

      # The operator's Consul token (manages tenants and their tokens), the
      # admin database credential and the console's certificate.
      template {
        destination = "${NOMAD_SECRETS_DIR}/consul_token"
        change_mode = "restart"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-control" }}{{ .consul_token }}{{ end -}}
        EOT
      }
      template {
        destination = "${NOMAD_SECRETS_DIR}/mongodb_uri"
        change_mode = "restart"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-control" }}{{ .mongodb_uri }}{{ end -}}
        EOT
      }
      template {
        destination = "${NOMAD_SECRETS_DIR}/tls.crt"
        change_mode = "restart"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-control" }}{{ .tls_cert }}{{ end -}}
        EOT
      }
      template {
        destination = "${NOMAD_SECRETS_DIR}/tls.key"
        change_mode = "restart"
        uid         = 65532
        gid         = 65532
        perms       = "0400"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/campus-control" }}{{ .tls_key }}{{ end -}}
        EOT
      }

      # Calls in progress (a backup streaming out) get 30 s to finish.
      kill_timeout = "35s"

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }
}
