package main

import (
	"flag"
	"strings"

	"github.com/campus-saas/campus/internal/cliflags"
)

// errHelp is returned when --help was asked for and printed.
var errHelp = cliflags.ErrHelp

// Environment variables configure; they never decide. Only the flags
// below, which say where servers listen, where the registry and the
// database are, how to log and how servers behave, can be set with an
// environment variable. Confirmations and destructive switches (--yes,
// --purge-data, --force, --all, --expired), tenant names and hosts come
// from the command line alone: a variable left in a shell never deletes
// a school.

// connectionFlags may come from the environment in every command.
var connectionFlags = map[string]bool{
	"data": true, "registry": true, "consul-prefix": true, "consul-check-interval": true,
	"mongodb-uri": true, "mongodb-uri-file": true, "log-level": true, "log-format": true, "public-url": true,
}

// serverFlags may come from the environment in the commands that run
// servers (serverCommands), as in a container's environment.
var serverFlags = map[string]bool{
	"listen": true, "tls-listen": true, "admin-listen": true, "advertise": true, "admin-advertise": true,
	"tls": true, "hsts": true, "https-redirect": true, "cert-dir": true, "cert-storage": true,
	"acme-directory": true, "acme-email": true, "acme-ca-roots": true, "acme-orders-per-hour": true,
	"trusted-proxies": true, "secure-cookies": true, "hold-timeout": true, "upstream-timeout": true,
	"lookup-rate": true, "wake": true, "register": true, "tenant-refresh": true, "migrate": true, "state-file": true,
	"mongo-listen": true, "idle-timeout": true, "start-idle": true, "max-starts": true, "health-interval": true,
	"readiness-interval": true, "pool": true, "liveness-failures": true,
	"proxy-admin": true, "tls-cert-file": true, "tls-key-file": true, "stats-interval": true, // campus control
}

var serverCommands = map[string]bool{"dev": true, "proxy": true, "app": true, "app-pool": true, "control": true}

// envNames maps flags whose environment variable is named by their own
// ecosystem rather than CAMPUS_<FLAG>.
var envNames = map[string]string{
	"mongodb-uri":      "MONGODB_URI",
	"mongodb-uri-file": "MONGODB_URI_FILE",
}

// envName is the name of the environment variable of flag name, where
// it has one (see envFor).
func envName(name string) string {
	if n, ok := envNames[name]; ok {
		return n
	}
	return "CAMPUS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// envFor says which flags of command cmd ("tenant delete") the
// environment may set, and with which variable.
func envFor(cmd string) cliflags.EnvFunc {
	server := serverCommands[cmd]
	return func(name string) string {
		if connectionFlags[name] || server && serverFlags[name] {
			return envName(name)
		}
		return ""
	}
}

// newFlags returns a FlagSet whose usage lists each flag with its
// environment variable, where it has one.
func newFlags(name, argsSynopsis, description string) *flag.FlagSet {
	return cliflags.New("campus", name, argsSynopsis, description, envFor(name))
}

// parseFlags parses args, then fills the flags not given on the command
// line that may come from the environment (envFor). Flags win over the
// environment. --help prints the command's usage on standard output.
func parseFlags(fs *flag.FlagSet, args []string, e *env) error {
	return cliflags.Parse(fs, args, envFor(strings.TrimPrefix(fs.Name(), "campus ")), e.getenv, e.stdout)
}

// stringList is a repeatable string flag (--host a --host b).
type stringList = cliflags.StringList
