package deploytest

import (
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The scheduled backups (issue 15): compose's backup service (run by the
// host's cron) and the Nomad periodic job run `campus tenant backup --all`
// into a volume, with retention, and campus accepts their commands.

const nomadBackupJob = "deploy/nomad/campus-backup.nomad.hcl"

// checkBackupArgs checks `tenant backup --all --dir DIR --keep N` with DIR
// the mount point of the archives volume.
func checkBackupArgs(t *testing.T, what string, args []string, mount string) {
	t.Helper()
	if len(args) < 3 || args[0] != "tenant" || args[1] != "backup" || !slices.Contains(args, "--all") {
		t.Fatalf("%s: args %q, want `tenant backup --all …`", what, args)
	}
	if dir := flagValue(args, "--dir"); dir != mount {
		t.Errorf("%s: --dir %q, want the volume's mount point %q", what, dir, mount)
	}
	if flagValue(args, "--keep") == "" {
		t.Errorf("%s: no --keep: archives would pile up forever", what)
	}
}

func TestComposeBackupService(t *testing.T) {
	p := loadCompose(t)
	s, ok := p.Services["backup"]
	if !ok {
		t.Fatal("no service backup")
	}
	if !oneShot(p, "backup") || !slices.Contains(s.Profiles, "tools") {
		t.Errorf("backup must be a one-shot under profile tools (run by cron), got restart %q profiles %v", s.Restart, s.Profiles)
	}
	mount := ""
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == "campus-backups" {
			mount = v.Target
		}
	}
	if mount == "" {
		t.Fatalf("backup does not mount the named volume campus-backups: %+v", s.Volumes)
	}
	checkBackupArgs(t, "compose service backup", s.Command, mount)
	// TestComposeCampusCommands runs the command through campus's flags.
}

func TestNomadBackupJob(t *testing.T) {
	j := parseNomadJob(t, nomadBackupJob, nil, nil)
	if j.typ != "batch" {
		t.Errorf("type %q, want batch", j.typ)
	}
	if req := requiredVars(j); len(req) > 0 {
		t.Errorf("required variables %v; every one needs a default", req)
	}
	// The schedule: periodic, never two at once.
	f, diags := hclparse.NewParser().ParseHCLFile(repoPath(nomadBackupJob))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	job := blocksOf(f.Body.(*hclsyntax.Body), "job")[0].Body
	per := blocksOf(job, "periodic")
	if len(per) != 1 {
		t.Fatal("no periodic block")
	}
	for _, attr := range []string{"crons", "prohibit_overlap"} {
		if _, ok := per[0].Body.Attributes[attr]; !ok {
			t.Errorf("periodic lacks %s", attr)
		}
	}
	g, task := onlyTask(t, j)
	gb := blocksOf(job, "group")[0].Body
	vols := blocksOf(gb, "volume")
	tb := blocksOf(gb, "task")[0].Body
	mounts := blocksOf(tb, "volume_mount")
	if len(vols) != 1 || len(mounts) != 1 {
		t.Fatalf("group %s: want one host volume mounted once", g.name)
	}
	dest := ""
	if a, ok := mounts[0].Body.Attributes["destination"]; ok {
		v, _ := a.Expr.Value(nil)
		dest = v.AsString()
	}
	checkBackupArgs(t, nomadBackupJob, task.args, dest)
	checkSecretTemplates(t, j, task)
	env := map[string]string{}
	for k, v := range task.env {
		env[k] = containerRewrites.Replace(v)
	}
	args := rewriteAll(task.args, containerRewrites)
	checkEnvNames(t, nomadBackupJob, env, []string{"tenant", "backup"})
	checkAccepted(t, nomadBackupJob, args, env)
}
