package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/internal/systemtest"
)

// A school whose schema 1 data holds registration numbers that differ
// only in case: `campus manage T migrate` migrates, prints the report and
// exits non-zero; `campus app --migrate` serves the school anyway.
func TestMigrateReportsCaseDuplicates(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "dups")
	t.Cleanup(func() { c.run("", nil, "tenant", "delete", name, "--purge-data", "--yes") })
	c.ok("tenant", "create", name, "--host", name+".school.localhost")

	// Make it a schema 1 database with case duplicates.
	ctx := context.Background()
	db := mongotest.Client(t).Database(name)
	if err := db.Collection("students").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("students").InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: int64(1)}, {Key: "registration_no", Value: "S001"}, {Key: "first_name", Value: "Amina"}, {Key: "second_name", Value: "Otieno"}},
		bson.D{{Key: "_id", Value: int64(2)}, {Key: "registration_no", Value: "s001"}, {Key: "first_name", Value: "Kofi"}, {Key: "second_name", Value: "Mensah"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("meta").UpdateOne(ctx, bson.M{"_id": "schema"}, bson.M{"$set": bson.M{"version": 1}}); err != nil {
		t.Fatal(err)
	}

	r := c.run("", nil, "manage", name, "migrate")
	if r.code == 0 || !strings.Contains(r.stdout, "not yet unique regardless of case") ||
		!strings.Contains(r.stderr, `"S001" (id 1, Amina Otieno)`) || !strings.Contains(r.stderr, `"s001" (id 2, Kofi Mensah)`) {
		t.Fatalf("manage migrate: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// The app still serves the school (and both students).
	addr := systemtest.FreeAddr(t)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		e := &env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr, getenv: func(k string) string { return c.env[k] }}
		done <- run(actx, e, []string{"app", "--tenant", name, "--migrate", "--listen", addr})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("campus app did not stop")
		}
	}()
	deadline := time.Now().Add(2 * time.Minute) // a busy machine
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = name + ".school.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if !strings.Contains(body.String(), "Amina") || !strings.Contains(body.String(), "Kofi") {
					t.Fatalf("the app serves, but not both students:\n%s", body.String())
				}
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("campus app exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app did not serve the school: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
