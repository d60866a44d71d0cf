package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/campus-saas/campus/internal/cliflags"
	"github.com/campus-saas/campus/tenancy"
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
	cmd := strings.TrimPrefix(fs.Name(), "campus ")
	if usage, data := fs.Usage, fs.Lookup("data"); data != nil {
		texts := map[*flag.Flag]string{data: data.Usage}
		if f := fs.Lookup("mongodb-uri"); f != nil {
			texts[f] = f.Usage
		}
		fs.Usage = func() {
			for f, text := range texts { // the flag package may call Usage more than once
				f.Usage = text
			}
			helpNow(fs, e, cmd)
			usage()
		}
	}
	return cliflags.Parse(fs, args, envFor(cmd), e.getenv, e.stdout)
}

// helpNow adds to --help what the data folder and the database resolve to
// now, from the flags given so far, the environment and the data folder
// (tenancy.DatabaseAddress.Resolve: what the command would use), rather
// than only the static defaults.
func helpNow(fs *flag.FlagSet, e *env, cmd string) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	value := func(name string) string {
		f := fs.Lookup(name)
		if f == nil {
			return ""
		}
		if v := e.getenv(envFor(cmd)(name)); !given[name] && envFor(cmd)(name) != "" && v != "" {
			return v
		}
		return f.Value.String()
	}
	data := value("data")
	abs, err := filepath.Abs(data)
	if err != nil {
		abs = data
	}
	there := "a data folder is there"
	if _, err := os.Stat(abs); err != nil {
		there = "no data folder there yet"
	}
	fs.Lookup("data").Usage += fmt.Sprintf(" (now: %s; %s)", abs, there)
	f := fs.Lookup("mongodb-uri")
	if f == nil || cmd == "dev" { // dev starts its own database unless given one
		return
	}
	uri, from, err := tenancy.DatabaseAddress{URI: value("mongodb-uri"), URIFile: value("mongodb-uri-file"), DataDir: data}.Resolve()
	if err != nil {
		f.Usage += fmt.Sprintf(" (now: %v)", err)
		return
	}
	f.Usage += fmt.Sprintf(" (now: %s, from %s)", tenancy.RedactURI(uri), from)
}

// stringList is a repeatable string flag (--host a --host b).
type stringList = cliflags.StringList
