#!/bin/sh
# campus-init.sh: registers the tenants of tenants.conf and migrates their
# databases. Run by the one-shot campus-init service of docker-compose.yml on
# every `docker compose up`, before the apps start; safe to run again:
#   - a tenant that is not registered yet: `campus tenant create` (which
#     migrates its database first, then registers it);
#   - a tenant that is: `campus manage NAME migrate` (a new image may bring a
#     new schema version). Its hosts and display name are left as they are.
#
# Then it binds the Consul ACL tokens of deploy/compose/secrets.sh to their
# policies (`campus token … --secret-file`, idempotent): each tenant's app
# token, the proxies' token and Prometheus's read-only token.
#
# Environment: TENANTS_FILE (default /etc/campus/tenants.conf), SECRETS_DIR
# (default /run/secrets), and what `campus tenant` reads: CAMPUS_REGISTRY,
# CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN_FILE (the management token),
# MONGODB_URI_FILE (a credential allowed to create collections and indexes in
# every tenant's database: mongodb_uri_admin).
set -eu

tenants=${TENANTS_FILE:-/etc/campus/tenants.conf}
secrets=${SECRETS_DIR:-/run/secrets}
n=0
while read -r name hosts display || [ -n "${name:-}" ]; do
	case $name in '' | '#'*) continue ;; esac
	n=$((n + 1))
	# stdin stays the tenants file for `read`: commands get /dev/null.
	if campus tenant show "$name" >/dev/null 2>&1 </dev/null; then
		echo "tenant $name exists; migrating its database"
		campus manage "$name" migrate </dev/null
		campus token tenant "$name" --secret-file "$secrets/consul_token_$name" </dev/null
		continue
	fi
	set --
	old_ifs=$IFS
	IFS=,
	for h in $hosts; do
		set -- "$@" --host "$h"
	done
	IFS=$old_ifs
	if [ -n "$display" ]; then
		set -- "$@" --display-name "$display"
	fi
	campus tenant create "$name" "$@" </dev/null
	campus token tenant "$name" --secret-file "$secrets/consul_token_$name" </dev/null
done <"$tenants"

if [ "$n" -eq 0 ]; then
	echo "campus-init: no tenants in $tenants" >&2
	exit 1
fi
campus token proxy --secret-file "$secrets/consul_token_proxy" </dev/null
campus token reader --secret-file "$secrets/consul_token_prometheus" </dev/null
echo "campus-init: $n tenants ready"
