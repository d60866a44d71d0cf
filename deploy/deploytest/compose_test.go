package deploytest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	composeFile  = "docker-compose.yml"
	envExample   = ".env.example"
	tenantsFile  = "deploy/compose/tenants.conf"
	secretsDir   = "deploy/compose/secrets"
	appPrefix    = "app-"
	appPort      = "8080"
	oneShotRetry = "no"
)

// loadCompose loads docker-compose.yml with compose-go, the loader of
// `docker compose` itself, with the values of .env.example and every
// profile: it validates the file against the Compose schema and resolves
// every service, network, volume, config and secret reference.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{repoPath(composeFile)},
		cli.WithWorkingDirectory(repoRoot),
		cli.WithEnv(envFile(t, repoPath(envExample))),
		cli.WithProfiles([]string{"tools"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

// envFile reads KEY=VALUE lines.
func envFile(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, "=") {
			t.Fatalf("%s: not KEY=VALUE: %q", path, line)
		}
		out = append(out, line)
	}
	return out
}

// tenantLine is one line of deploy/compose/tenants.conf.
type tenantLine struct {
	name    string
	hosts   []string
	display string
}

func readTenants(t *testing.T) []tenantLine {
	t.Helper()
	f, err := os.Open(repoPath(tenantsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tenantLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) < 2 {
			t.Fatalf("%s: %q has no host", tenantsFile, sc.Text())
		}
		out = append(out, tenantLine{name: fields[0], hosts: strings.Split(fields[1], ","), display: strings.Join(fields[2:], " ")})
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no tenant", tenantsFile)
	}
	return out
}

// isCampus tells the services that run the campus image built from the
// Dockerfile.
func isCampus(s types.ServiceConfig) bool {
	return s.Build != nil && filepath.Clean(s.Build.Context) == repoRoot
}

// oneShot tells the services that run to completion: restart "no" and
// either a dependency of another service with
// service_completed_successfully or a tool under a profile.
func oneShot(p *types.Project, name string) bool {
	s := p.Services[name]
	if s.Restart != oneShotRetry {
		return false
	}
	if len(s.Profiles) > 0 {
		return true
	}
	for _, other := range p.Services {
		if d, ok := other.DependsOn[name]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
			return true
		}
	}
	return false
}

func TestComposeLoads(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "campus" {
		t.Errorf("project name %q, want campus", p.Name)
	}
	for _, want := range []string{"mongo", "mongo-users", "consul", "campus-init", "proxy", "prometheus", "grafana", "cli"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	if n, ok := p.Networks["backend"]; !ok || !n.Internal {
		t.Errorf("network backend must exist and be internal (no route out): %+v", n)
	}
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	published := map[string]bool{"proxy": true, "grafana": true, "prometheus": true, "control": true}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		t.Run(name, func(t *testing.T) {
			if s.Restart == "" {
				t.Errorf("no restart policy")
			}
			if oneShot(p, name) {
				if s.HealthCheck != nil && !s.HealthCheck.Disable && len(s.HealthCheck.Test) > 0 {
					t.Errorf("one-shot service has a health check")
				}
			} else {
				if s.Restart == oneShotRetry {
					t.Errorf("restart %q, but nothing waits for it to complete", s.Restart)
				}
				if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
					t.Errorf("long-running service without a health check")
				}
			}
			for dep, d := range s.DependsOn {
				if _, ok := p.Services[dep]; !ok {
					t.Errorf("depends on unknown service %s", dep)
				}
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if h := p.Services[dep].HealthCheck; h == nil || h.Disable {
						t.Errorf("waits for %s to be healthy, which has no health check", dep)
					}
				case types.ServiceConditionCompletedSuccessfully:
					if !oneShot(p, dep) {
						t.Errorf("waits for %s to complete, which is not a one-shot", dep)
					}
				}
			}
			if len(s.Networks) == 0 {
				t.Errorf("on no explicit network")
			}
			for n := range s.Networks {
				if _, ok := p.Networks[n]; !ok {
					t.Errorf("unknown network %s", n)
				}
			}
			if len(s.Ports) > 0 {
				if !published[name] {
					t.Errorf("publishes ports; only %v should", sortedKeys(published))
				}
				if _, ok := s.Networks["frontend"]; !ok {
					t.Errorf("publishes ports but is not on network frontend (backend is internal)")
				}
			}
			for _, v := range s.Volumes {
				switch v.Type {
				case types.VolumeTypeVolume:
					if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("unknown volume %s", v.Source)
					}
				case types.VolumeTypeBind:
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("bind mount source: %v", err)
					}
					if !v.ReadOnly {
						t.Errorf("bind mount %s is writable", v.Source)
					}
				}
			}
			for _, c := range s.Configs {
				cfg, ok := p.Configs[c.Source]
				if !ok {
					t.Errorf("unknown config %s", c.Source)
					continue
				}
				if _, err := os.Stat(cfg.File); err != nil {
					t.Errorf("config %s: %v", c.Source, err)
				}
			}
			for _, sec := range s.Secrets {
				if _, ok := p.Secrets[sec.Source]; !ok {
					t.Errorf("unknown secret %s", sec.Source)
				}
			}
			if isCampus(s) {
				if !s.ReadOnly {
					t.Errorf("campus container without read_only")
				}
				if s.Entrypoint == nil && !slices.Contains(s.Tmpfs, "/tmp") {
					t.Errorf("read-only campus container without a tmpfs on /tmp (multipart uploads spill there)")
				}
				if !slices.Contains(s.CapDrop, "ALL") {
					t.Errorf("campus container keeps its capabilities (cap_drop: [ALL])")
				}
				if s.User != "" {
					t.Errorf("user %q overrides the image's non-root user", s.User)
				}
			}
		})
	}
	for name, sec := range p.Secrets {
		rel, err := filepath.Rel(repoPath(secretsDir), sec.File)
		if err != nil || strings.HasPrefix(rel, "..") || sec.File == "" {
			t.Errorf("secret %s: file %q is not under %s, where secrets.sh writes", name, sec.File, secretsDir)
		} else if rel != name {
			t.Errorf("secret %s: file %s, want %s/%s", name, sec.File, secretsDir, name)
		}
	}
}

// TestComposeTenants ties tenants.conf, the app services, their secrets
// and the mongo-users service together.
func TestComposeTenants(t *testing.T) {
	p := loadCompose(t)
	tenants := readTenants(t)
	var apps []string
	for name := range p.Services {
		if strings.HasPrefix(name, appPrefix) {
			apps = append(apps, strings.TrimPrefix(name, appPrefix))
		}
	}
	var names []string
	for _, tl := range tenants {
		names = append(names, tl.name)
	}
	slices.Sort(apps)
	slices.Sort(names)
	if !slices.Equal(apps, names) {
		t.Fatalf("app services for %v, tenants.conf lists %v: every tenant needs exactly one app-<tenant> service", apps, names)
	}
	mongoUsers := map[string]bool{}
	for _, s := range p.Services["mongo-users"].Secrets {
		mongoUsers[s.Source] = true
	}
	for _, tl := range tenants {
		s := p.Services[appPrefix+tl.name]
		want := []string{"app", "--tenant", tl.name, "--advertise", appPrefix + tl.name + ":" + appPort}
		if !slices.Equal([]string(s.Command), want) {
			t.Errorf("%s: command %q, want %q", s.Name, s.Command, want)
		}
		// Its own database credential and its own Consul token, nothing else.
		secret, token := "mongodb_uri_"+tl.name, "consul_token_"+tl.name
		if len(s.Secrets) != 2 || s.Secrets[0].Source != secret || s.Secrets[0].Target != "mongodb_uri" ||
			s.Secrets[1].Source != token || s.Secrets[1].Target != "consul_token" {
			t.Errorf("%s: secrets %+v, want only %s as mongodb_uri and %s as consul_token", s.Name, s.Secrets, secret, token)
		}
		if v := s.Environment["MONGODB_URI_FILE"]; v == nil || *v != "/run/secrets/mongodb_uri" {
			t.Errorf("%s: MONGODB_URI_FILE must name its secret /run/secrets/mongodb_uri", s.Name)
		}
		if v := s.Environment["CONSUL_HTTP_TOKEN_FILE"]; v == nil || *v != "/run/secrets/consul_token" {
			t.Errorf("%s: CONSUL_HTTP_TOKEN_FILE must name its secret /run/secrets/consul_token", s.Name)
		}
		if v := s.Environment["CONSUL_HTTP_TOKEN"]; v != nil {
			t.Errorf("%s: a Consul token in clear in the environment", s.Name)
		}
		if !mongoUsers[secret] {
			t.Errorf("mongo-users does not get %s: the tenant would have no database user", secret)
		}
	}
	// No other service may hold a tenant's credential.
	for _, s := range p.Services {
		for _, sec := range s.Secrets {
			if !strings.HasPrefix(sec.Source, "mongodb_uri_") || sec.Source == "mongodb_uri_admin" || s.Name == "mongo-users" {
				continue
			}
			if s.Name != appPrefix+strings.TrimPrefix(sec.Source, "mongodb_uri_") {
				t.Errorf("%s holds %s, another tenant's credential", s.Name, sec.Source)
			}
		}
	}
}

var (
	uriWithPassword = regexp.MustCompile(`://[^/@\s]+:[^/@\s]+@`)
	secretName      = regexp.MustCompile(`(?i)(password|secret|token|credential)`)
)

func TestComposeNoSecretInClear(t *testing.T) {
	p := loadCompose(t)
	for _, s := range p.Services {
		for k, v := range s.Environment {
			if v == nil {
				continue
			}
			if uriWithPassword.MatchString(*v) {
				t.Errorf("%s: %s holds a connection string with a password", s.Name, k)
			}
			if secretName.MatchString(k) && !strings.HasSuffix(k, "_FILE") && !strings.HasSuffix(k, "_DIR") {
				t.Errorf("%s: %s looks like a secret in clear; pass a file (…_FILE) from a Docker secret", s.Name, k)
			}
		}
		for _, a := range append(append([]string{}, s.Command...), s.Entrypoint...) {
			if uriWithPassword.MatchString(a) {
				t.Errorf("%s: a command argument holds a connection string with a password", s.Name)
			}
			if a == "--mongodb-uri" || strings.HasPrefix(a, "--mongodb-uri=") {
				t.Errorf("%s: --mongodb-uri shows in ps; use MONGODB_URI_FILE", s.Name)
			}
		}
	}
	raw, err := os.ReadFile(repoPath(envExample))
	if err != nil {
		t.Fatal(err)
	}
	if uriWithPassword.Match(raw) {
		t.Errorf("%s holds a connection string with a password", envExample)
	}
}

var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}`)

// TestComposeEnvDocumented: every variable docker-compose.yml interpolates
// is in .env.example with its default value, and .env.example has nothing
// else; none uses the CAMPUS_ prefix, which campus reads as its flags.
func TestComposeEnvDocumented(t *testing.T) {
	raw, err := os.ReadFile(repoPath(composeFile))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]string{}
	for _, m := range interpolation.FindAllStringSubmatch(string(raw), -1) {
		if prev, ok := used[m[1]]; ok && prev != m[2] {
			t.Errorf("${%s} has two defaults in %s: %q and %q", m[1], composeFile, prev, m[2])
		}
		used[m[1]] = m[2]
	}
	documented := map[string]string{}
	for _, kv := range envFile(t, repoPath(envExample)) {
		k, v, _ := strings.Cut(kv, "=")
		documented[k] = v
	}
	for k, def := range used {
		v, ok := documented[k]
		switch {
		case !ok:
			t.Errorf("${%s} is used by %s but not documented in %s", k, composeFile, envExample)
		case v != def:
			t.Errorf("%s: %s=%s, but the default in %s is %q", envExample, k, v, composeFile, def)
		}
		if strings.HasPrefix(k, "CAMPUS_") {
			t.Errorf("${%s}: compose variables must not use the CAMPUS_ prefix", k)
		}
	}
	for k := range documented {
		if _, ok := used[k]; !ok {
			t.Errorf("%s documents %s, which %s does not use", envExample, k, composeFile)
		}
	}
}

// containerRewrites point a service's container addresses at nothing
// reachable on this machine, for flag checks.
var containerRewrites = strings.NewReplacer(
	"consul:8500", "127.0.0.1:1",
	"0.0.0.0:", "127.0.0.1:",
)

// serviceEnv is a service's environment as a map, rewritten.
func serviceEnv(s types.ServiceConfig, r *strings.Replacer) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = r.Replace(*v)
		}
	}
	return env
}

func rewriteAll(args []string, r *strings.Replacer) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.Replace(a)
	}
	return out
}

// listenPort rewrites every listen address to port 0 so that a command
// that gets past its flags binds nothing fixed.
var listenPort = regexp.MustCompile(`^127\.0\.0\.1:[0-9]+$`)

func portZero(args []string, env map[string]string) ([]string, map[string]string) {
	args = slices.Clone(args)
	for i := 1; i < len(args); i++ {
		if (args[i-1] == "--listen" || args[i-1] == "--admin-listen" || args[i-1] == "--tls-listen") && listenPort.MatchString(args[i]) {
			args[i] = "127.0.0.1:0"
		}
	}
	for _, k := range []string{"CAMPUS_LISTEN", "CAMPUS_ADMIN_LISTEN", "CAMPUS_TLS_LISTEN"} {
		if v, ok := env[k]; ok && listenPort.MatchString(v) {
			env[k] = "127.0.0.1:0"
		}
	}
	return args, env
}

// TestComposeCampusCommands runs every campus service's command and
// environment, and every campus health check, through campus's own flag
// parsing.
func TestComposeCampusCommands(t *testing.T) {
	p := loadCompose(t)
	needCampus(t)
	checked := 0
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if !isCampus(s) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			env := serviceEnv(s, containerRewrites)
			switch {
			case len(s.Entrypoint) > 0:
				// campus-init: a shell script; TestInitScript checks the
				// campus commands it runs.
				if s.Build.Target != "tools" {
					t.Errorf("entrypoint %q needs a shell: build target tools", s.Entrypoint)
				}
				checkEnvNames(t, name, env, []string{"tenant", "create"}, []string{"manage", "x", "migrate"})
			case len(s.Command) == 0:
				// cli: whatever the operator runs.
				checkEnvNames(t, name, env, []string{"tenant", "create"}, []string{"manage", "x", "migrate"})
			default:
				args, env := portZero(rewriteAll(s.Command, containerRewrites), env)
				checkEnvNames(t, name, env, subcommand(s.Command))
				checkAccepted(t, name, args, env)
				checked++
			}
			if h := s.HealthCheck; h != nil && !h.Disable {
				if len(h.Test) < 3 || h.Test[0] != "CMD" || h.Test[1] != "campus" || h.Test[2] != "healthcheck" {
					t.Fatalf("health check %q: want [CMD campus healthcheck URL] (the image has no shell)", h.Test)
				}
				// Nothing listens on the rewritten URL: the check must
				// fail as "unhealthy" (1), not as a usage error.
				r := runCampus(t, rewriteAll(h.Test[1:], strings.NewReplacer(":8080/", ":1/", ":8001/", ":1/"))[1:], nil, 10*time.Second)
				if r.code != 1 {
					t.Errorf("health check %q on a closed port: exit %d, want 1\n%s", h.Test, r.code, r.stderr)
				}
			}
		})
	}
	if checked < 2 {
		t.Errorf("checked %d campus commands; want the proxy and every app", checked)
	}
}

// subcommand is the command words of a campus command line, whose --help
// lists its flags: `tenant backup`, not `tenant` (which has subcommands).
func subcommand(args []string) []string {
	if len(args) > 1 && (args[0] == "tenant" || args[0] == "token" || args[0] == "bench") {
		return args[:2]
	}
	return args[:1]
}
