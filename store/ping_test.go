package store

import (
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// TestPingReadsOnlyItsDatabase: Ping (each app start and readiness check)
// answers for a database that holds nothing without creating it (an app
// must never bring back a purged school's database), and for one that
// holds a school.
func TestPingReadsOnlyItsDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	client := mongotest.Client(t)
	school := mongotest.Database(t) // dropped at the end
	empty := mongotest.Database(t)
	s := New(school, Options{})
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{school.Name(), empty.Name()} {
		if err := New(client.Database(db), Options{}).Ping(ctx); err != nil {
			t.Errorf("Ping %s: %v", db, err)
		}
	}
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, empty.Name()) {
		t.Errorf("Ping made database %s: %v", empty.Name(), names)
	}
	if !slices.Contains(names, school.Name()) {
		t.Errorf("database %s is not listed: %v", school.Name(), names)
	}
}
