package store

import (
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func collectionNames(t *testing.T, s *Store) []string {
	t.Helper()
	names, err := s.db.ListCollectionNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestMigrateCreatesEveryCollection: after Migrate, the school's writes
// (students one by one and by import, update import, bulk delete, users,
// logins, sessions, resets, groups, history, an interrupted operation's
// roll-back) create no collection (on FerretDB a creation holds a mutex
// of every database). A database missing some, at the current version,
// gets them at the next Migrate, and Migrate again changes nothing.
func TestMigrateCreatesEveryCollection(t *testing.T) {
	s := newStore(t, Options{})
	ctx := t.Context()
	migrated := collectionNames(t, s)
	for _, c := range unindexedCollections {
		if !slices.Contains(migrated, c) {
			t.Errorf("no collection %s after Migrate: %v", c, migrated)
		}
	}

	st := mustCreate(t, s, "C-1", "Amina", "Otieno")
	if _, err := s.UpdateStudent(ctx, st.ID, StudentInput{RegistrationNo: "C-1", FirstName: "Amina", SecondName: "Wanjiru"}); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := s.ImportStudents(ctx, rowsOf("C", 5, "Kofi"), nil); err != nil || len(errs) > 0 {
		t.Fatalf("import: %v %v", errs, err)
	}
	plan, err := s.PlanImport(ctx, rowsOf("C", 5, "Zawadi"), nil, nil, ImportUpdate)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyImport(ctx, plan, CommandLine); err != nil {
		t.Fatal(err)
	}
	crashAt(t, s.db, "commit", func(w *Store) { _, _, _ = w.ImportStudents(ctx, rowsOf("D", 3, "Esi"), nil) })
	if _, err := s.RecoverOperations(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteStudents(ctx, []int64{st.ID}, CommandLine); err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateSuperuser(ctx, "amina", "amina@example.org", "a long passphrase 7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "amina", "wrong password here", "192.0.2.1"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if _, _, err := s.CreateSession(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateResetToken(ctx, "amina", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, "Clerks", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordHistory(ctx, StudentsImported(CommandLine, 1)); err != nil {
		t.Fatal(err)
	}
	if got := collectionNames(t, s); !slices.Equal(got, migrated) {
		t.Errorf("writes after Migrate created collections:\n got %v\nwant %v", got, migrated)
	}

	// Resumable: a database at this version without some of them.
	for _, c := range []string{colOperations, colCounters, colHistoryChain} {
		if err := s.db.Collection(c).Drop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got := collectionNames(t, s); !slices.Equal(got, migrated) {
			t.Errorf("after Migrate again: %v, want %v", got, migrated)
		}
	}
}
