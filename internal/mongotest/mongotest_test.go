package mongotest

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestMain(m *testing.M) { Main(m) }

func TestDatabaseIsFreshUniqueAndDropped(t *testing.T) {
	ctx := t.Context()
	var names []string
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			db := Database(t)
			if !regexp.MustCompile(`^t_[0-9a-f]{16}$`).MatchString(db.Name()) {
				t.Fatalf("database name %q", db.Name())
			}
			n, err := db.Collection("c").CountDocuments(ctx, bson.D{})
			if err != nil || n != 0 {
				t.Fatalf("fresh database has %d documents (err %v)", n, err)
			}
			if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: name}}); err != nil {
				t.Fatal(err)
			}
			names = append(names, db.Name())
		})
	}
	if names[0] == names[1] {
		t.Fatalf("two tests got the same database %q", names[0])
	}
	all, err := Client(t).ListDatabaseNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if slices.Contains(all, n) {
			t.Errorf("database %s still exists after its test ended", n)
		}
	}
}

func TestURI(t *testing.T) {
	if u := URI(t); !regexp.MustCompile(`^mongodb(\+srv)?://`).MatchString(u) {
		t.Fatalf("URI does not look like a MongoDB URI")
	}
}
