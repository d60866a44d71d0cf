package tenancy_test

import (
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/tenancy"
)

// An archive of a schema 3 school (int64 student _ids) restored beside
// it as another school: the restore's migration gives the copy string
// _ids (schema 4); the copy holds the archived school's student and
// nothing of a bystander holding the same student ID, and neither the
// archived school nor the bystander is changed.
func TestRestoreSchema3ArchiveCrossTenant(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	a, b := w.create(w.name()), w.create(w.name())
	client := mongotest.Client(t)
	students := func(db string) []bson.Raw {
		t.Helper()
		cur, err := client.Database(db).Collection("students").Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var out []bson.Raw
		if err := cur.All(ctx, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// A as schema 3 left it.
	old := students(a.Database)
	if len(old) != 1 {
		t.Fatalf("A has %d students", len(old))
	}
	var doc bson.D
	if err := bson.Unmarshal(old[0], &doc); err != nil {
		t.Fatal(err)
	}
	doc[0] = bson.E{Key: "_id", Value: int64(1)}
	if doc2 := students(b.Database); len(doc2) != 1 || doc2[0].Lookup("_id").StringValue() != "0000000000000000001" {
		t.Fatalf("B's students: %v", doc2)
	}
	col := client.Database(a.Database).Collection("students")
	if _, err := col.DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if _, err := col.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Database(a.Database).Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "schema"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 3}}}}); err != nil {
		t.Fatal(err)
	}
	bBefore := students(b.Database)
	archive := filepath.Join(t.TempDir(), tenancy.ArchiveName(a.Name, w.now))
	if _, err := w.m.BackupToFile(ctx, a, archive, tenancy.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	copyName := w.name()
	r, err := w.m.RestoreArchive(ctx, archive, tenancy.RestoreOptions{As: copyName, Hosts: []string{copyName + ".localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.From != 3 || r.To != 4 {
		t.Errorf("restored at schema %d → %d, want 3 → 4", r.From, r.To)
	}
	got := students(r.Tenant.Database)
	if len(got) != 1 || got[0].Lookup("_id").StringValue() != "0000000000000000001" ||
		got[0].Lookup("registration_no").StringValue() != "R/"+a.Name {
		t.Fatalf("the copy's students: %v", got)
	}
	st, err := w.store(r.Tenant).Student(ctx, 1)
	if err != nil || st.RegistrationNo != "R/"+a.Name {
		t.Errorf("the copy's student 1: %+v %v", st, err)
	}
	if after := students(b.Database); len(after) != 1 || string(after[0]) != string(bBefore[0]) {
		t.Errorf("bystander B changed by the restore: %v, was %v", after, bBefore)
	}
	if st, err := w.store(b).Student(ctx, 1); err != nil || st.RegistrationNo != "R/"+b.Name {
		t.Errorf("B's student 1: %+v %v", st, err)
	}
	if left := students(a.Database); len(left) != 1 || left[0].Lookup("_id").Int64() != 1 {
		t.Errorf("the archived school changed by its backup: %v", left)
	}
}
