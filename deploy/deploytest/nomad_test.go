package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/campus-saas/campus/deploy/grafana"
	"github.com/campus-saas/campus/registry/consul"
)

const (
	nomadDir      = "deploy/nomad"
	nomadProxyJob = "deploy/nomad/campus-proxy.nomad.hcl"
	nomadAppJob   = "deploy/nomad/campus-app.nomad.hcl"
	nomadGuide    = "deploy/nomad/README.md"
)

// nomadJob is the part of a Nomad job file that ties it to campus, with
// HCL2 variables and Nomad's runtime interpolations evaluated.
type nomadJob struct {
	id, name, typ string
	variables     map[string]bool // declared; true when required (no default)
	groups        []nomadGroup
}

type nomadGroup struct {
	name     string
	ports    map[string]nomadPort
	services []nomadService
	tasks    []nomadTask
}

type nomadPort struct{ static, to int64 }

type nomadService struct {
	name, port string
	tags       []string
	meta       map[string]string
	checks     []nomadCheck
}

type nomadCheck struct{ typ, path, port string }

type nomadTask struct {
	name, driver string
	args         []string
	env          map[string]string
	templates    []nomadTemplate
	resources    map[string]string // cpu, memory
}

type nomadTemplate struct{ destination, data string }

// runtimeValues stand in for Nomad's runtime interpolations
// (${NOMAD_…}, ${attr.…}, ${node.…}); keys are dotted paths.
type runtimeValues map[string]string

func (rv runtimeValues) value(path string) string {
	if v, ok := rv[path]; ok {
		return v
	}
	switch {
	case strings.HasSuffix(path, "ip-address"):
		return "127.0.0.1"
	case strings.HasPrefix(path, "NOMAD_HOST_PORT_"), strings.HasPrefix(path, "NOMAD_PORT_"):
		return "8080"
	case strings.HasPrefix(path, "NOMAD_HOST_ADDR_"), strings.HasPrefix(path, "NOMAD_ADDR_"):
		return "127.0.0.1:8080"
	case path == "NOMAD_SECRETS_DIR":
		return "/secrets"
	}
	return "x"
}

// parseNomadJob parses a job file with HCL and evaluates it with vars
// (HCL2 input variables) and rv.
func parseNomadJob(t *testing.T, rel string, vars map[string]string, rv runtimeValues) nomadJob {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCLFile(repoPath(rel))
	if diags.HasErrors() {
		t.Fatalf("%s: %s", rel, diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	e := &hclEval{t: t, file: rel, rv: rv, vars: map[string]cty.Value{}}
	j := nomadJob{variables: map[string]bool{}}
	for _, b := range blocksOf(body, "variable") {
		name := b.Labels[0]
		def, hasDefault := b.Body.Attributes["default"]
		j.variables[name] = !hasDefault
		if v, ok := vars[name]; ok {
			e.vars[name] = cty.StringVal(v)
		} else if hasDefault {
			e.vars[name] = e.value(def.Expr)
		} else {
			t.Fatalf("%s: variable %s is required; the test gives none", rel, name)
		}
	}
	jobs := blocksOf(body, "job")
	if len(jobs) != 1 {
		t.Fatalf("%s: %d jobs, want 1", rel, len(jobs))
	}
	jb := jobs[0].Body
	j.id = jobs[0].Labels[0]
	if a, ok := jb.Attributes["id"]; ok {
		j.id = e.str(a.Expr)
	}
	j.name = j.id
	if a, ok := jb.Attributes["name"]; ok {
		j.name = e.str(a.Expr)
	}
	j.typ = "service"
	if a, ok := jb.Attributes["type"]; ok {
		j.typ = e.str(a.Expr)
	}
	for _, gb := range blocksOf(jb, "group") {
		g := nomadGroup{name: gb.Labels[0], ports: map[string]nomadPort{}}
		for _, nb := range blocksOf(gb.Body, "network") {
			for _, pb := range blocksOf(nb.Body, "port") {
				var p nomadPort
				if a, ok := pb.Body.Attributes["static"]; ok {
					p.static = e.int(a.Expr)
				}
				if a, ok := pb.Body.Attributes["to"]; ok {
					p.to = e.int(a.Expr)
				}
				g.ports[pb.Labels[0]] = p
			}
		}
		for _, sb := range blocksOf(gb.Body, "service") {
			s := nomadService{meta: map[string]string{}}
			s.name = e.strAttr(sb.Body, "name")
			s.port = e.strAttr(sb.Body, "port")
			if a, ok := sb.Body.Attributes["tags"]; ok {
				s.tags = e.strs(a.Expr)
			}
			for _, mb := range blocksOf(sb.Body, "meta") {
				for k, a := range mb.Body.Attributes {
					s.meta[k] = e.str(a.Expr)
				}
			}
			for _, cb := range blocksOf(sb.Body, "check") {
				c := nomadCheck{typ: e.strAttr(cb.Body, "type"), path: e.strAttr(cb.Body, "path"), port: s.port}
				if a, ok := cb.Body.Attributes["port"]; ok {
					c.port = e.str(a.Expr)
				}
				s.checks = append(s.checks, c)
			}
			g.services = append(g.services, s)
		}
		for _, tb := range blocksOf(gb.Body, "task") {
			task := nomadTask{name: tb.Labels[0], driver: e.strAttr(tb.Body, "driver"), env: map[string]string{}, resources: map[string]string{}}
			for _, rb := range blocksOf(tb.Body, "resources") {
				for k, a := range rb.Body.Attributes {
					task.resources[k] = e.str(a.Expr)
				}
			}
			for _, cb := range blocksOf(tb.Body, "config") {
				if a, ok := cb.Body.Attributes["args"]; ok {
					task.args = e.strs(a.Expr)
				}
			}
			for _, eb := range blocksOf(tb.Body, "env") {
				for k, a := range eb.Body.Attributes {
					task.env[k] = e.str(a.Expr)
				}
			}
			for _, tpl := range blocksOf(tb.Body, "template") {
				task.templates = append(task.templates, nomadTemplate{
					destination: e.strAttr(tpl.Body, "destination"),
					data:        e.strAttr(tpl.Body, "data"),
				})
			}
			g.tasks = append(g.tasks, task)
		}
		j.groups = append(j.groups, g)
	}
	return j
}

func blocksOf(b *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, blk := range b.Blocks {
		if blk.Type == typ {
			out = append(out, blk)
		}
	}
	return out
}

// hclEval evaluates job file expressions: var.* from the input variables,
// every other root (NOMAD_*, attr, node, meta) from runtimeValues.
type hclEval struct {
	t    *testing.T
	file string
	rv   runtimeValues
	vars map[string]cty.Value
}

func (e *hclEval) value(expr hclsyntax.Expression) cty.Value {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(e.vars)},
		Functions: map[string]function.Function{"floor": stdlib.FloorFunc}} // those the job files use
	tree := map[string]any{}
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		if root == "var" {
			continue
		}
		path := []string{root}
		for _, step := range tr[1:] {
			if a, ok := step.(hcl.TraverseAttr); ok {
				path = append(path, a.Name)
			}
		}
		node := tree
		for i, p := range path {
			if i == len(path)-1 {
				node[p] = e.rv.value(strings.Join(path, "."))
				break
			}
			next, ok := node[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[p] = next
			}
			node = next
		}
	}
	for k, v := range tree {
		ctx.Variables[k] = toCty(v)
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		e.t.Fatalf("%s: %s", e.file, diags.Error())
	}
	return v
}

func toCty(v any) cty.Value {
	switch v := v.(type) {
	case string:
		return cty.StringVal(v)
	case map[string]any:
		m := map[string]cty.Value{}
		for k, x := range v {
			m[k] = toCty(x)
		}
		return cty.ObjectVal(m)
	}
	panic("unreachable")
}

func (e *hclEval) str(expr hclsyntax.Expression) string {
	v := e.value(expr)
	if v.Type() == cty.Number {
		return v.AsBigFloat().String()
	}
	if v.Type() != cty.String {
		e.t.Fatalf("%s:%s: want a string, got %s", e.file, expr.Range(), v.Type().FriendlyName())
	}
	return v.AsString()
}

func (e *hclEval) strAttr(b *hclsyntax.Body, name string) string {
	a, ok := b.Attributes[name]
	if !ok {
		return ""
	}
	return e.str(a.Expr)
}

func (e *hclEval) int(expr hclsyntax.Expression) int64 {
	v := e.value(expr)
	if v.Type() != cty.Number {
		e.t.Fatalf("%s:%s: want a number", e.file, expr.Range())
	}
	i, _ := v.AsBigFloat().Int64()
	return i
}

func (e *hclEval) strs(expr hclsyntax.Expression) []string {
	v := e.value(expr)
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		e.t.Fatalf("%s:%s: want a list", e.file, expr.Range())
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, x := it.Element()
		if x.Type() != cty.String {
			e.t.Fatalf("%s:%s: want strings", e.file, expr.Range())
		}
		out = append(out, x.AsString())
	}
	return out
}

// onlyTask returns the job's single group and task.
func onlyTask(t *testing.T, j nomadJob) (nomadGroup, nomadTask) {
	t.Helper()
	if len(j.groups) != 1 || len(j.groups[0].tasks) != 1 {
		t.Fatalf("job %s: want one group with one task", j.id)
	}
	return j.groups[0], j.groups[0].tasks[0]
}

func TestNomadFilesParse(t *testing.T) {
	files, err := filepath.Glob(repoPath(nomadDir, "*.hcl"))
	if err != nil || len(files) < 2 {
		t.Fatalf("Nomad job files: %v %v", files, err)
	}
	p := hclparse.NewParser()
	for _, f := range files {
		if _, diags := p.ParseHCLFile(f); diags.HasErrors() {
			t.Errorf("%s: %s", f, diags.Error())
		}
	}
}

func TestNomadProxyJob(t *testing.T) {
	j := parseNomadJob(t, nomadProxyJob, nil, nil)
	if j.typ != "system" {
		t.Errorf("type %q, want system (a proxy on every client)", j.typ)
	}
	for v, required := range j.variables {
		if required {
			t.Errorf("variable %s has no default", v)
		}
	}
	g, task := onlyTask(t, j)
	if task.driver != "docker" || len(task.args) == 0 || task.args[0] != "proxy" {
		t.Fatalf("task %s: driver %q args %q, want the campus image running `campus proxy`", task.name, task.driver, task.args)
	}
	if !slices.Contains(task.args, "--register=false") {
		t.Errorf("task %s: args %q lack --register=false: Nomad registers the service, and a proxy on 0.0.0.0 with its own registration refuses to start", task.name, task.args)
	}
	listen := flagValue(task.args, "--listen")
	admin := flagValue(task.args, "--admin-listen")
	if port(listen) != g.ports["http"].to || port(admin) != g.ports["admin"].to {
		t.Errorf("--listen %s --admin-listen %s do not match ports http→%d admin→%d", listen, admin, g.ports["http"].to, g.ports["admin"].to)
	}
	// HTTPS (issue 14): 80 and 443 on every client, TLS in the proxy.
	if tlsListen := flagValue(task.args, "--tls-listen"); tlsListen == "" || port(tlsListen) != g.ports["https"].to {
		t.Errorf("--tls-listen %q does not match port https→%d", tlsListen, g.ports["https"].to)
	}
	if g.ports["http"].static != 80 || g.ports["https"].static != 443 {
		t.Errorf("ports http %d https %d, want 80 and 443 by default", g.ports["http"].static, g.ports["https"].static)
	}
	if len(g.services) != 1 {
		t.Fatalf("%d services, want 1", len(g.services))
	}
	s := g.services[0]
	cfg := loadPrometheus(t)
	_, sd := scrapeJob(t, cfg, grafana.JobProxy)
	if !slices.Contains(sd.Services, s.name) || s.port != "http" {
		t.Errorf("service %q on port %q; Prometheus discovers %v", s.name, s.port, sd.Services)
	}
	if s.meta[metricsPortMeta] != "8080" { // NOMAD_HOST_PORT_admin, as evaluated here
		t.Errorf("service meta %s = %q, want ${NOMAD_HOST_PORT_admin}", metricsPortMeta, s.meta[metricsPortMeta])
	}
	if len(s.checks) != 1 || s.checks[0] != (nomadCheck{typ: "http", path: "/healthz", port: "admin"}) {
		t.Errorf("checks %+v, want http /healthz on port admin", s.checks)
	}
	env := map[string]string{}
	for k, v := range task.env {
		env[k] = containerRewrites.Replace(v)
	}
	args, env := portZero(rewriteAll(task.args, containerRewrites), env)
	checkEnvNames(t, nomadProxyJob, env, []string{"proxy"})
	checkAccepted(t, nomadProxyJob, args, env)
}

func TestNomadAppJob(t *testing.T) {
	j := parseNomadJob(t, nomadAppJob, map[string]string{"tenant": "lagos"}, nil)
	if j.typ != "service" {
		t.Errorf("type %q, want service", j.typ)
	}
	if j.id != "campus-app-lagos" || j.name != j.id {
		t.Errorf("job id %q name %q, want campus-app-lagos (one job per tenant)", j.id, j.name)
	}
	if req := requiredVars(j); !slices.Equal(req, []string{"tenant"}) {
		t.Errorf("required variables %v, want only tenant", req)
	}
	g, task := onlyTask(t, j)
	if task.driver != "docker" || !slices.Equal(task.args, []string{"app", "--tenant", "lagos", "--register=false"}) {
		t.Errorf("task %s: driver %q args %q, want `campus app --tenant <tenant> --register=false`: Nomad registers the service", task.name, task.driver, task.args)
	}
	if port(task.env["CAMPUS_LISTEN"]) != g.ports["http"].to {
		t.Errorf("CAMPUS_LISTEN %q does not match port http→%d", task.env["CAMPUS_LISTEN"], g.ports["http"].to)
	}
	if len(g.services) != 1 {
		t.Fatalf("%d services, want 1", len(g.services))
	}
	s := g.services[0]
	if s.name != consul.DefaultServicePrefix+"lagos" || !slices.Contains(s.tags, consul.ServiceTag) {
		t.Errorf("service %q tags %v; the registry routes lagos only to service %slagos (Prometheus selects tag %s)",
			s.name, s.tags, consul.DefaultServicePrefix, consul.ServiceTag)
	}
	if len(s.checks) != 1 || s.checks[0] != (nomadCheck{typ: "http", path: "/readyz", port: "http"}) {
		t.Errorf("checks %+v, want http /readyz on port http", s.checks)
	}
	// The credential: a Nomad Variable only this job reads, rendered into
	// the task's secrets directory, named by MONGODB_URI_FILE.
	// So is the tenant's Consul token.
	checkSecretTemplates(t, j, task)
	if flagValue(task.args, "--mongodb-uri") != "" {
		t.Errorf("args %q: --mongodb-uri shows in ps; use MONGODB_URI_FILE", task.args)
	}
	env := map[string]string{}
	for k, v := range task.env {
		env[k] = containerRewrites.Replace(v)
	}
	args, env := portZero(rewriteAll(task.args, containerRewrites), env)
	checkEnvNames(t, nomadAppJob, env, []string{"app"})
	checkAccepted(t, nomadAppJob, args, env)
}

func requiredVars(j nomadJob) []string {
	var out []string
	for v, req := range j.variables {
		if req {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func port(addr string) int64 {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return -1
	}
	var n int64
	for _, c := range addr[i+1:] {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

var (
	guidePath = regexp.MustCompile(`deploy/[A-Za-z0-9_./-]+[A-Za-z0-9]`)
	guideVar  = regexp.MustCompile(`-var ([a-z_]+)=`)
)

// TestNomadGuide: the guide's files exist, its -var options are declared by
// the job it runs, and its add-a-tenant sequence writes the Variable the app
// job reads.
func TestNomadGuide(t *testing.T) {
	raw, err := os.ReadFile(repoPath(nomadGuide))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	for _, p := range guidePath.FindAllString(guide, -1) {
		if _, err := os.Stat(repoPath(p)); err != nil {
			t.Errorf("%s mentions %s: %v", nomadGuide, p, err)
		}
	}
	jobs := map[string]nomadJob{
		"campus-proxy.nomad.hcl": parseNomadJob(t, nomadProxyJob, nil, nil),
		"campus-app.nomad.hcl":   parseNomadJob(t, nomadAppJob, map[string]string{"tenant": "lagos"}, nil),
	}
	// A command may span lines ending in a backslash.
	cmds := strings.Split(strings.ReplaceAll(guide, "\\\n", " "), "\n")
	n := 0
	for _, line := range cmds {
		if !strings.Contains(line, "nomad job run") {
			continue
		}
		for file, j := range jobs {
			if !strings.Contains(line, file) {
				continue
			}
			n++
			for _, m := range guideVar.FindAllStringSubmatch(line, -1) {
				if _, ok := j.variables[m[1]]; !ok {
					t.Errorf("%s: -var %s is not a variable of %s: %s", nomadGuide, m[1], file, strings.TrimSpace(line))
				}
			}
		}
	}
	if n < 2 {
		t.Errorf("%s runs the jobs %d times; want both jobs", nomadGuide, n)
	}
	for _, want := range []string{
		`nomad var put -out=none "nomad/jobs/campus-app-$T" \` + "\n" + `  mongodb_uri=@"$d/mongodb_uri_$T" consul_token=@"$d/consul_token_$T"`,
		`campus token tenant "$T"`,
		`CONSUL_HTTP_TOKEN_FILE="$d/consul_token_$T" \` + "\n" + `  nomad job run`,
		`mongosh --nodb --quiet --file ` + mongoUsersJS,
		`campus tenant create "$T" --host "$HOST"`,
		`nomad job run -var tenant="$T"`,
	} {
		if !strings.Contains(guide, want) {
			t.Errorf("%s: the add-a-tenant sequence lacks %q", nomadGuide, want)
		}
	}
	// The tenant's campus command is accepted as written.
	checkAccepted(t, nomadGuide, []string{"tenant", "create", "lagos", "--host", "lagos.school.example.org"},
		map[string]string{"CAMPUS_REGISTRY": "consul", "CONSUL_HTTP_ADDR": "127.0.0.1:1", "MONGODB_URI_FILE": "/nonexistent"})
}

// checkSecretTemplates checks that task gets its MongoDB credential and
// Consul token only from job j's own Nomad Variable, rendered into its
// secrets directory and named by the _FILE variables, and that no
// variable of its environment holds a secret in clear.
func checkSecretTemplates(t *testing.T, j nomadJob, task nomadTask) {
	t.Helper()
	if len(task.templates) != 2 {
		t.Fatalf("%d templates, want the MongoDB credential and the Consul token", len(task.templates))
	}
	for i, want := range []struct{ env, item string }{{"MONGODB_URI_FILE", ".mongodb_uri"}, {"CONSUL_HTTP_TOKEN_FILE", ".consul_token"}} {
		tpl := task.templates[i]
		if tpl.destination != task.env[want.env] || !strings.HasPrefix(tpl.destination, "/secrets/") {
			t.Errorf("template writes %q, %s=%q: want the same file in the secrets directory", tpl.destination, want.env, task.env[want.env])
		}
		if !strings.Contains(tpl.data, `nomadVar "nomad/jobs/`+j.id+`"`) || !strings.Contains(tpl.data, want.item) {
			t.Errorf("template %q: want item %s of Nomad Variable nomad/jobs/%s", tpl.data, want.item, j.id)
		}
	}
	for k, v := range task.env {
		if uriWithPassword.MatchString(v) || (secretName.MatchString(k) && !strings.HasSuffix(k, "_FILE")) {
			t.Errorf("env %s holds a secret in clear", k)
		}
	}
}
