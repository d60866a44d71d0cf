#!/bin/sh
# Generates the Docker secrets of docker-compose.yml, once. Existing files are
# kept, so running it again after adding a tenant to tenants.conf only creates
# that tenant's credential.
#
#   deploy/compose/secrets.sh [DIR]      (default: deploy/compose/secrets)
#
# Files written (each holds one value, no trailing newline):
#   mongo_root_password      MongoDB's root user; only the mongo and
#                            mongo-users services see it
#   mongodb_uri_admin        campus-admin (readWriteAnyDatabase,
#                            dbAdminAnyDatabase): campus-init and the cli
#                            service (`campus tenant`, `campus manage`)
#   mongodb_uri_<tenant>     campus-<tenant>, readWrite on database <tenant>
#                            only: that tenant's app service and nothing else
#   grafana_admin_password   Grafana's admin user
#   consul_management_token  Consul's initial management token (ACLs on,
#                            default deny): the consul service, campus-init
#                            and the cli service only
#   consul_token_proxy       the proxies' Consul token: read the registry,
#                            register service campus-proxy
#   consul_token_prometheus  read-only, for Prometheus's service discovery
#   consul_token_<tenant>    that tenant's app token: registers only service
#                            campus-app-<tenant>, reads only its own tenant
#                            record; that tenant's app service and nothing
#                            else. campus-init binds each to its policy.
#
# The directory is made 0700 so that no other user of the host can read it.
# The files themselves are 0644: Docker Compose bind-mounts them into
# /run/secrets/ with their host ownership and mode, and the containers run as
# non-root users (campus 65532, mongodb 999, grafana 472) that must read them.
#
# Environment: TENANTS_FILE (default: tenants.conf beside this script),
# MONGO_HOST (default: mongo:27017, the compose service).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/secrets}
tenants=${TENANTS_FILE:-$here/tenants.conf}
mongo=${MONGO_HOST:-mongo:27017}

# random prints 32 random bytes as 64 hex digits: safe in a URI unescaped.
random() {
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

# uuid prints a random (version 4) UUID: Consul takes token secrets only in
# that form.
uuid() {
	h=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	v=$(printf '%x' $(( (0x$(echo "$h" | cut -c17-18) & 0x3f) | 0x80 )))
	echo "$h" | cut -c1-8 | tr -d '\n'
	printf -- '-%s-4%s-%s%s-%s' "$(echo "$h" | cut -c9-12)" "$(echo "$h" | cut -c14-16)" "$v" "$(echo "$h" | cut -c19-20)" "$(echo "$h" | cut -c21-32)"
}

# put NAME VALUE writes DIR/NAME unless it exists.
put() {
	if [ -e "$dir/$1" ]; then
		return 0
	fi
	umask 022
	printf '%s' "$2" >"$dir/$1.tmp"
	chmod 0644 "$dir/$1.tmp"
	mv "$dir/$1.tmp" "$dir/$1"
	echo "created $dir/$1"
}

mkdir -p "$dir"
chmod 0700 "$dir"

put mongo_root_password "$(random)"
put grafana_admin_password "$(random)"
put mongodb_uri_admin "mongodb://campus-admin:$(random)@$mongo/admin?authSource=admin"
put consul_management_token "$(uuid)"
put consul_token_proxy "$(uuid)"
put consul_token_prometheus "$(uuid)"

n=0
while read -r name hosts display || [ -n "${name:-}" ]; do
	case $name in '' | '#'*) continue ;; esac
	case $name in
	admin | local | config)
		echo "secrets.sh: tenant name $name is reserved" >&2
		exit 1
		;;
	esac
	put "mongodb_uri_$name" "mongodb://campus-$name:$(random)@$mongo/$name?authSource=$name"
	put "consul_token_$name" "$(uuid)"
	n=$((n + 1))
done <"$tenants"

if [ "$n" -eq 0 ]; then
	echo "secrets.sh: no tenants in $tenants" >&2
	exit 1
fi
