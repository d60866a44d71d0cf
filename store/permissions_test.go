package store

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Issue 27: the users from before groups keep their access. A database
// at schema 2 whose users have no groups field (and no groups index):
// before the migration a staff member already counts as "staff"; the
// migration (through Migrate's fast path, which sees the missing index)
// writes the lists; a second run changes nothing.
func TestMigrateUserGroupsKeepsAccess(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	staff := mustStaff(t, s, "secretary")
	su, err := s.CreateSuperuser(ctx, "head", "", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	// Make them users from before groups, and the database one from
	// before the groups index.
	if _, err := s.col(colUsers).UpdateMany(ctx, bson.D{}, d("$unset", d("groups", ""))); err != nil {
		t.Fatal(err)
	}
	if err := s.col(colGroups).Drop(ctx); err != nil {
		t.Fatal(err)
	}
	legacy, err := s.UserByID(ctx, staff.ID)
	if err != nil || legacy.Groups != nil {
		t.Fatalf("legacy user: %+v, %v", legacy, err)
	}
	all := PermsOf(StudentPermissions...)
	if p, err := s.PermsOf(ctx, legacy); err != nil || p != all {
		t.Fatalf("legacy staff before the migration: %v, %v; want every student permission", p.List(), err)
	}
	for run := 0; run < 2; run++ {
		if _, _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := s.UserByID(ctx, staff.ID)
		if !slices.Equal(got.Groups, []string{GroupStaff}) {
			t.Fatalf("run %d: staff's groups %#v, want [staff]", run, got.Groups)
		}
		if p, _ := s.PermsOf(ctx, got); p != all {
			t.Fatalf("run %d: staff lost access: %v", run, p.List())
		}
		gotSU, _ := s.UserByID(ctx, su.ID)
		if gotSU.Groups == nil || len(gotSU.Groups) != 0 {
			t.Fatalf("run %d: superuser's groups %#v, want an empty list", run, gotSU.Groups)
		}
		if p, _ := s.PermsOf(ctx, gotSU); p != AllPerms {
			t.Fatalf("run %d: superuser's perms %v", run, p.List())
		}
	}
	// An emptied list stays empty (it is not the legacy nil).
	if _, err := s.SetUserGroups(ctx, staff.ID, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := s.UserByID(ctx, staff.ID)
	if p, _ := s.PermsOf(ctx, got); got.Groups == nil || p != 0 {
		t.Fatalf("no groups: %#v gives %v, want nothing", got.Groups, p.List())
	}
}

func TestGroupsCRUD(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	g, err := s.CreateGroup(ctx, " Secretaries ", []Permission{PermExport, PermView, PermView})
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "Secretaries" || !slices.Equal(g.Permissions, []Permission{PermView, PermExport}) {
		t.Fatalf("group = %+v", g)
	}
	for _, tc := range []struct {
		name  string
		perms []Permission
		field string
		is    error
	}{
		{"secretaries", nil, "", ErrGroupExists},
		{"", nil, "name", nil},
		{"viewer", nil, "name", nil}, // a built-in group's name
		{"Cooks", []Permission{"superuser"}, "permissions", nil},
		{"Cooks", []Permission{"drop_database"}, "permissions", nil},
		{strings.Repeat("x", MaxGroupNameLen+1), nil, "name", nil},
	} {
		_, err := s.CreateGroup(ctx, tc.name, tc.perms)
		var fe FieldErrors
		switch {
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("CreateGroup(%q): %v, want %v", tc.name, err, tc.is)
		case tc.field != "" && (!errors.As(err, &fe) || fe[tc.field] == ""):
			t.Errorf("CreateGroup(%q, %v): %v, want an error on %s", tc.name, tc.perms, err, tc.field)
		}
	}
	u := mustStaff(t, s, "clerk")
	if _, err := s.SetUserGroups(ctx, u.ID, []string{g.ID, GroupViewer}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetUserGroups(ctx, u.ID, []string{"0123456789abcdef01234567"}); err == nil {
		t.Fatal("a group that does not exist was accepted")
	}
	if _, err := s.UpdateGroup(ctx, GroupViewer, "Viewer", StudentPermissions); !errors.Is(err, ErrBuiltInGroup) {
		t.Fatalf("changing a built-in group: %v", err)
	}
	if err := s.DeleteGroup(ctx, GroupStaff); !errors.Is(err, ErrBuiltInGroup) {
		t.Fatalf("deleting a built-in group: %v", err)
	}
	if _, err := s.UpdateGroup(ctx, g.ID, "Office", []Permission{PermDelete}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.UserByID(ctx, u.ID)
	if p, _ := s.PermsOf(ctx, got); p != PermsOf(PermView, PermExport, PermDelete) {
		t.Fatalf("perms after the change: %v", p.List())
	}
	members, err := s.GroupMembers(ctx)
	if err != nil || members[g.ID] != 1 || members[GroupViewer] != 1 {
		t.Fatalf("members = %v, %v", members, err)
	}
	if err := s.DeleteGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = s.UserByID(ctx, u.ID)
	if !slices.Equal(got.Groups, []string{GroupViewer}) {
		t.Fatalf("groups after the delete: %v", got.Groups)
	}
	if _, err := s.GroupByID(ctx, g.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted group: %v", err)
	}
}

// Groups of one school are not another's, even under the same ID.
func TestGroupsCrossTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b := newStore(t, Options{}), newStore(t, Options{})
	g, err := a.CreateGroup(ctx, "Office", []Permission{PermDelete})
	if err != nil {
		t.Fatal(err)
	}
	bu := mustStaff(t, b, "clerk")
	if _, err := b.SetUserGroups(ctx, bu.ID, []string{g.ID}); err == nil {
		t.Fatal("B's user joined A's group")
	}
	if _, err := b.GroupByID(ctx, g.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("A's group at B: %v", err)
	}
	bg, _ := b.Groups(ctx)
	for _, x := range bg {
		if x.Name == "Office" {
			t.Fatal("A's group listed at B")
		}
	}
}

func TestPasswordProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pw    string
		attrs []string
		want  []string // substrings, in order; nil: accepted
	}{
		{"correct horse 9", []string{"head"}, nil},
		{"password", []string{"clerk"}, []string{"too common"}},
		{"123", nil, []string{"too short", "too common", "entirely numeric"}},
		{"98712345601", nil, []string{"entirely numeric"}},
		{"clerk.mwangi1", []string{"clerk.mwangi", "clerk@school.example"}, []string{"too similar to the username"}},
		{"mwangi.school", []string{"head", "mwangi@school.example"}, []string{"too similar to the email address"}},
		{"Clerk-One", []string{"clerk-one"}, []string{"too similar to the username"}},
		{strings.Repeat("é", 40), nil, []string{"too long"}},
		{"ab\xffcdefghij", nil, []string{"not valid UTF-8"}},
		// A long password is not "similar" to a short name inside it
		// (Django's length ratio).
		{"a-very-long-passphrase-for-al", []string{"al"}, nil},
	} {
		got := PasswordProblems(tc.pw, tc.attrs...)
		if len(got) != len(tc.want) {
			t.Errorf("PasswordProblems(%q, %q) = %q, want %d problems %q", tc.pw, tc.attrs, got, len(tc.want), tc.want)
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("PasswordProblems(%q)[%d] = %q, want %q", tc.pw, i, got[i], w)
			}
		}
	}
	// The store refuses them with every problem at once.
	fe := ValidateSuperuser("clerk", "", "123")
	if n := strings.Count(fe["password"], "\n") + 1; n != 3 {
		t.Fatalf("ValidateSuperuser gives %d password problems, want 3: %q", n, fe["password"])
	}
}
