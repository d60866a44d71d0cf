package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/store"
)

// campus manage T resetlink USER prints a one-time link on T's primary
// host; campus manage T history exports T's history only.
func TestResetLinkAndHistoryCommands(t *testing.T) {
	c := newCLI(t)
	nairobi, accra := uniqueTenant(t, "nairobi"), uniqueTenant(t, "accra")
	tn := c.createSchool(nairobi, "head", "N/1")
	c.createSchool(accra, "head", "A/1")
	purgeAtEnd(c, nairobi, accra)

	t.Run("resetlink", func(t *testing.T) {
		r := c.ok("manage", nairobi, "resetlink", "HEAD", "--expires", "2h")
		link := strings.TrimSpace(r.stdout)
		u, err := url.Parse(link)
		if err != nil || u.Scheme != "http" || u.Host != tn.PrimaryHost || u.Path != "/admin/password-reset/" {
			t.Fatalf("link %q, want http://%s/admin/password-reset/?token=…", link, tn.PrimaryHost)
		}
		if !strings.Contains(r.stderr, "valid until") {
			t.Errorf("stderr %q says nothing of the expiry", r.stderr)
		}
		token := u.Query().Get("token")
		ctx := context.Background()
		other := store.New(mongotest.Client(t).Database(accra), store.Options{})
		if _, err := other.ResetPassword(ctx, token, "other-school-pw"); !errors.Is(err, store.ErrResetInvalid) {
			t.Fatalf("accra accepted nairobi's link: %v", err)
		}
		st := store.New(mongotest.Client(t).Database(nairobi), store.Options{})
		if _, err := st.ResetPassword(ctx, token, "reset-by-link-1"); err != nil {
			t.Fatalf("use the link: %v", err)
		}
		if _, err := st.ResetPassword(ctx, token, "reset-by-link-2"); !errors.Is(err, store.ErrResetInvalid) {
			t.Fatalf("second use: %v", err)
		}
		for _, args := range [][]string{
			{"resetlink", "nobody"},
			{"resetlink"},
			{"resetlink", "head", "--expires", "200h"},
			{"resetlink", "head", "--expires", "-1h"},
		} {
			if r := c.run("", nil, append([]string{"manage", nairobi}, args...)...); r.code == 0 || r.stdout != "" {
				t.Errorf("manage %v: exit %d, stdout %q", args, r.code, r.stdout)
			}
		}
	})

	t.Run("history", func(t *testing.T) {
		var entries []store.HistoryEntry
		out := c.ok("manage", nairobi, "history", "--format", "json").stdout
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			t.Fatalf("history json: %v\n%s", err, out)
		}
		if len(entries) != 2 || entries[0].Action != store.ActionImport || entries[0].Count != 1 || entries[0].Username != store.CommandLine.Username ||
			entries[1].Action != store.ActionResetLink || entries[1].Object != "user head" {
			t.Fatalf("history = %+v; want the import of createSchool and the reset link, by the command line", entries)
		}
		if entries[0].File != "students.csv" || entries[0].Mode != string(store.ImportAdd) {
			t.Fatalf("the import's entry names file %q, mode %q; want the file's name (no folder) and add", entries[0].File, entries[0].Mode)
		}
		csv := c.ok("manage", nairobi, "history").stdout
		lines := strings.Split(strings.TrimSpace(csv), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "at,username,action") || !strings.Contains(lines[1], ",import,") {
			t.Fatalf("history csv:\n%s", csv)
		}
		if out := c.ok("manage", accra, "history", "--format", "json").stdout; strings.Contains(out, "reset_link") {
			t.Fatalf("accra's history shows nairobi's reset link:\n%s", out)
		}
		if r := c.run("", nil, "manage", nairobi, "history", "--format", "xml"); r.code == 0 {
			t.Error("--format xml accepted")
		}
	})
}
