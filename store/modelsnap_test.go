package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// savedSchool is a stamped school of n students whose read model has been
// loaded from the collection and saved (the head written).
func savedSchool(t *testing.T, tenantID string, n int, name func(i int) StudentInput) *Store {
	t.Helper()
	ctx := t.Context()
	s := New(mongotest.Database(t), Options{ReadModel: ReadModelOn, QueryTimeout: 2 * time.Minute})
	if _, _, err := s.MigrateTenant(ctx, tenantID); err != nil {
		t.Fatal(err)
	}
	in := make([]StudentInput, n)
	for i := range in {
		in[i] = name(i)
	}
	if _, errs, err := s.ImportStudents(ctx, in, nil); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	fresh := reopen(s, nil)
	if _, err := fresh.ListStudents(ctx, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	waitHead(t, s, func(h snapHead) bool { return h.Count == n })
	// Every save finished, its old chunks removed: the test's own changes
	// to the saved model are not undone behind its back.
	s.bg.Wait()
	fresh.bg.Wait()
	return s
}

// reopen is another process on s's database; saved, when not nil, is told
// whether its loads used the saved model (nil) or why not.
func reopen(s *Store, saved func(error)) *Store {
	o := New(s.db, Options{ReadModel: ReadModelOn, QueryTimeout: 2 * time.Minute})
	o.afterLoadSaved = saved
	return o
}

func head(t *testing.T, s *Store) snapHead {
	t.Helper()
	var h snapHead
	if err := s.col(colSnapshot).FindOne(t.Context(), d("_id", snapHeadID)).Decode(&h); err != nil {
		t.Fatalf("read the saved model's head: %v", err)
	}
	return h
}

// waitHead polls until the saved model's head satisfies ok (saves after a
// full load run in the background).
func waitHead(t *testing.T, s *Store, ok func(snapHead) bool) snapHead {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var h snapHead
		err := s.col(colSnapshot).FindOne(t.Context(), d("_id", snapHeadID)).Decode(&h)
		if err == nil && ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("saved model's head = %+v, %v", h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loadWith is the first list of a new process on s's database, and
// whether that process used the saved model.
func loadWith(t *testing.T, s *Store, o ListOptions) (Page, error) {
	t.Helper()
	var mu sync.Mutex
	var why error = errors.New("no load")
	fresh := reopen(s, func(err error) { mu.Lock(); why = err; mu.Unlock() })
	pg, err := fresh.ListStudents(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return pg, why
}

func studentNames(prefix string) func(int) StudentInput {
	return func(i int) StudentInput {
		return StudentInput{RegistrationNo: fmt.Sprintf("R-%03d", i), FirstName: prefix + strconv.Itoa(i), SecondName: "Otieno"}
	}
}

// A new process answers from the saved model plus the journal's tail,
// exactly as the database does.
func TestSavedModelAnswersAsTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := savedSchool(t, "tenant-a", 40, studentNames("Amina"))
	saved := head(t, s)
	// The tail: a create, an update, a delete after the saved position.
	mustCreate(t, s, "T-1", "Zoë", "Ñúñez")
	st := mustFind(t, s, "R-007")
	if _, err := s.UpdateStudent(ctx, st.ID, StudentInput{RegistrationNo: "R-007", FirstName: "Kofi", SecondName: "Mensah"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteStudent(ctx, mustFind(t, s, "R-011").ID); err != nil {
		t.Fatal(err)
	}
	// Past snapTailByID entries, the tail is read in one pass.
	for i := range snapTailByID {
		mustCreate(t, s, fmt.Sprintf("T-%d", 100+i), "Wanjiru", fmt.Sprintf("Kamau%d", i))
	}
	db := New(s.db, Options{ReadModel: ReadModelOff})
	queries := []ListOptions{{}, {Query: "zoe"}, {Query: "kofi"}, {Query: "r-011"}, {Query: "wanjiru", PerPage: 500}, {Query: "kamau7"}, {Sort: "-first_name", Page: 2, PerPage: 7}, {Query: "amina1", Sort: "id"}}
	compare := func(step string, model func(ListOptions) Page) {
		t.Helper()
		for _, o := range queries {
			got := model(o)
			want, err := db.ListStudents(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(regNos(got), regNos(want)) || got.Total != want.Total || !slices.Equal(got.Students, want.Students) {
				t.Errorf("%s: %+v: saved model %v (%d), database %v (%d)", step, o, regNos(got), got.Total, regNos(want), want.Total)
			}
		}
	}
	compare("first read of each process", func(o ListOptions) Page {
		got, why := loadWith(t, s, o)
		if why != nil {
			t.Fatalf("%+v: the saved model was not used: %v", o, why)
		}
		return got
	})
	// One process answering every question after its first.
	one := reopen(s, nil)
	if _, err := one.ListStudents(ctx, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	compare("one process", func(o ListOptions) Page {
		got, err := one.ListStudents(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return got
	})
	if h := head(t, s); h.Gen != saved.Gen {
		t.Fatalf("a short tail saved the model again: %+v", h)
	}
}

// School B's database holding school A's saved model (the same student
// IDs in both): B's process refuses it and answers B's students.
func TestSavedModelOfAnotherTenantRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := savedSchool(t, "tenant-a", 20, studentNames("Amina"))
	b := savedSchool(t, "tenant-b", 20, studentNames("Brian"))
	if x, y := mustFind(t, a, "R-003"), mustFind(t, b, "R-003"); x.ID != y.ID {
		t.Fatalf("the schools' IDs differ (%d, %d): the test needs the same", x.ID, y.ID)
	}
	// Copy A's saved model over B's, head and chunks.
	if _, err := b.col(colSnapshot).DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	cur, err := a.col(colSnapshot).Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		if _, err := b.col(colSnapshot).InsertOne(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	got, why := loadWith(t, b, ListOptions{Query: "amina"})
	if !errors.Is(why, errSnapshotUnusable) || !strings.Contains(why.Error(), "tenant-a") {
		t.Fatalf("B's process on A's saved model: %v, want it refused for its tenant ID", why)
	}
	if got.Total != 0 {
		t.Fatalf("B's process found A's students: %v", regNos(got))
	}
	if got, _ := loadWith(t, b, ListOptions{Query: "brian3"}); got.Total != 1 {
		t.Fatalf("B's process: %v", regNos(got))
	}
	// Rebuilt: B's own model is saved again, and used.
	waitHead(t, b, func(h snapHead) bool { return h.TenantID == "tenant-b" })
	if _, why := loadWith(t, b, ListOptions{}); why != nil {
		t.Fatalf("after the rebuild: %v", why)
	}
}

// A torn, damaged or stale saved model is never served: the process loads
// the collection, answers as the database, and saves the model again.
func TestSavedModelTornOrStaleRebuilt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, s *Store, h snapHead)
		why   string
	}{
		{"a chunk's bytes changed", func(t *testing.T, s *Store, h snapHead) {
			var c snapChunk
			if err := s.col(colSnapshot).FindOne(t.Context(), d("_id", snapChunkID(h.Gen, 0))).Decode(&c); err != nil {
				t.Fatal(err)
			}
			c.Data[len(c.Data)/2] ^= 0xff
			if _, err := s.col(colSnapshot).ReplaceOne(t.Context(), d("_id", c.ID), c); err != nil {
				t.Fatal(err)
			}
		}, "checksum"},
		{"a chunk cut short", func(t *testing.T, s *Store, h snapHead) {
			if _, err := s.col(colSnapshot).UpdateOne(t.Context(), d("_id", snapChunkID(h.Gen, 0)), d("$set", d("data", []byte("campus")))); err != nil {
				t.Fatal(err)
			}
		}, "torn"},
		{"a chunk missing", func(t *testing.T, s *Store, h snapHead) {
			if _, err := s.col(colSnapshot).DeleteOne(t.Context(), d("_id", snapChunkID(h.Gen, 0))); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
		{"made from documents of schema 3", func(t *testing.T, s *Store, h snapHead) {
			setHead(t, s, "schema", 3)
		}, "schema 3"},
		{"from before schema 4 (no schema)", func(t *testing.T, s *Store, h snapHead) {
			if _, err := s.col(colSnapshot).UpdateOne(t.Context(), d("_id", snapHeadID), d("$unset", d("schema", ""))); err != nil {
				t.Fatal(err)
			}
		}, "schema 0"},
		{"a position beyond the journal", func(t *testing.T, s *Store, h snapHead) {
			setHead(t, s, "seq", h.Seq+50)
		}, "journal position"},
		{"a journal entry after it pruned", func(t *testing.T, s *Store, h snapHead) {
			mustCreate(t, s, "T-1", "Zoë", "Ñúñez")
			mustCreate(t, s, "T-2", "Ama", "Owusu")
			if _, err := s.col(colJournal).DeleteOne(t.Context(), d("_id", journalID(h.Seq+1))); err != nil {
				t.Fatal(err)
			}
		}, "pruned"},
		{"a bulk change after it", func(t *testing.T, s *Store, h snapHead) {
			doc := newStudentDoc(Student{ID: 5000, RegistrationNo: "T-3", FirstName: "Raw", SecondName: "Insert"})
			if _, err := s.col(colStudents).InsertOne(t.Context(), doc); err != nil {
				t.Fatal(err)
			}
			// Journaled by a process with no model (s's own would load
			// and save afresh, making the saved model current again).
			New(s.db, Options{ReadModel: ReadModelOn}).journal(t.Context(), journalEntry{Kind: entryReload}, nil)
		}, "bulk change"},
		{"a head saying format 3 (the release before) over a payload of another", func(t *testing.T, s *Store, h snapHead) {
			setHead(t, s, "format", 3)
		}, "format 3"},
		{"another format", func(t *testing.T, s *Store, h snapHead) {
			setHead(t, s, "format", snapFormat+1)
		}, "format"},
		{"a head claiming another tenant", func(t *testing.T, s *Store, h snapHead) {
			setHead(t, s, "tenant_id", "tenant-x")
		}, "tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := savedSchool(t, "tenant-a", 30, studentNames("Amina"))
			h := head(t, s)
			tc.spoil(t, s, h)
			got, why := loadWith(t, s, ListOptions{PerPage: 500})
			if !errors.Is(why, errSnapshotUnusable) || !strings.Contains(why.Error(), tc.why) {
				t.Fatalf("load on a spoilt saved model: %v, want it refused (%s)", why, tc.why)
			}
			want, err := New(s.db, Options{ReadModel: ReadModelOff}).ListStudents(ctx, ListOptions{PerPage: 500})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Students, want.Students) {
				t.Fatalf("answered %v, the database holds %v", regNos(got), regNos(want))
			}
			waitHead(t, s, func(n snapHead) bool { return n.Gen != h.Gen && n.TenantID == "tenant-a" && n.Format == snapFormat })
			if _, why := loadWith(t, s, ListOptions{}); why != nil {
				t.Fatalf("after the rebuild: %v", why)
			}
		})
	}
}

func setHead(t *testing.T, s *Store, field string, v any) {
	t.Helper()
	if _, err := s.col(colSnapshot).UpdateOne(t.Context(), d("_id", snapHeadID), d("$set", d(field, v))); err != nil {
		t.Fatal(err)
	}
}

// A woken school answers its first read from the saved model: the load of
// the collection is held for the whole test, and the read still answers.
func TestSavedModelFirstReadNeedsNoFullLoad(t *testing.T) {
	t.Parallel()
	s := savedSchool(t, "tenant-a", 300, studentNames("Amina"))
	release := make(chan struct{})
	defer close(release)
	fresh := reopen(s, func(err error) {
		if err != nil {
			<-release // the collection load would follow: never
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pg, err := fresh.ListStudents(ctx, ListOptions{})
	if err != nil || pg.Total != 300 {
		t.Fatalf("first read of a woken school = %d, %v", pg.Total, err)
	}
	if pg, err := fresh.ListStudents(ctx, ListOptions{Query: "amina299"}); err != nil || pg.Total != 1 {
		t.Fatalf("first search of a woken school = %d, %v", pg.Total, err)
	}
}

// An import in one process is saved by it, announced in the journal, and
// another process loads that saved model instead of the collection.
func TestSavedModelAfterAnImport(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := savedSchool(t, "tenant-a", 10, studentNames("Amina"))
	other := reopen(s, nil)
	if _, err := other.ListStudents(ctx, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var whys []error
	other.afterLoadSaved = func(err error) { mu.Lock(); whys = append(whys, err); mu.Unlock() }
	if _, errs, err := s.ImportStudents(ctx, []StudentInput{{RegistrationNo: "I-1", FirstName: "Kofi", SecondName: "Mensah"}, {RegistrationNo: "I-2", FirstName: "Ama", SecondName: "Owusu"}}, nil); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	if pg, err := other.ListStudents(ctx, ListOptions{Query: "kofi"}); err != nil || pg.Total != 1 {
		t.Fatalf("the other process after the import: %d, %v", pg.Total, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(whys) != 1 || whys[0] != nil {
		t.Fatalf("the other process's reload: %v, want one, from the saved model", whys)
	}
}

// A saved model decodes to exactly the students encoded: keys left out
// (plain ASCII) and kept (accents, other scripts, a tab), times to the
// nanosecond.
func TestSavedModelRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var docs []*studentDoc
	for i, in := range []StudentInput{{RegistrationNo: "NBI-001", FirstName: "Amina", SecondName: "Kamau"}, {RegistrationNo: "u/2026/7", FirstName: "ZOË", SecondName: "Ñúñez"}, {RegistrationNo: "x.1", FirstName: "Li", SecondName: "王"},
		{RegistrationNo: "A-9", FirstName: "Tab\there", SecondName: "O'Neil"}, {RegistrationNo: "b-2", FirstName: "", SecondName: "Smith Jones"}, {RegistrationNo: "C-3", FirstName: "Émile", SecondName: "Zola"}} {
		doc := newStudentDoc(Student{ID: int64(10 * (i + 1)), RegistrationNo: in.RegistrationNo, FirstName: in.FirstName,
			SecondName: in.SecondName, CreatedAt: at, UpdatedAt: at.Add(time.Duration(i) * time.Hour)})
		docs = append(docs, &doc)
	}
	sn := buildSnapshot(docs, 42, at)
	got, err := decodeSnapshot(encodeSnapshot(sn, "tenant-a"), "tenant-a", 42, at)
	if err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, "decoded", got, sn)
	if _, err := decodeSnapshot(encodeSnapshot(sn, "tenant-a"), "tenant-b", 42, at); err == nil {
		t.Fatal("a payload of tenant-a decoded as tenant-b's")
	}
	if _, err := decodeSnapshot(encodeSnapshot(sn, "tenant-a"), "tenant-a", 43, at); err == nil {
		t.Fatal("a payload at position 42 decoded as at 43")
	}
}

// A process that applied journal entries since the saved model saves it
// again when it closes (an app stopped for idleness), so that the next
// one loads it sealed, with no tail to replay (which would unseal it).
func TestSavedModelSavedAtClose(t *testing.T) {
	t.Parallel()
	for _, writes := range []int{1, snapTailByID + 1} {
		t.Run(strconv.Itoa(writes), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := savedSchool(t, "tenant-a", 10, studentNames("Amina"))
			saved := head(t, s)
			app := reopen(s, nil)
			if _, err := app.ListStudents(ctx, ListOptions{}); err != nil {
				t.Fatal(err)
			}
			for i := range writes {
				mustCreate(t, s, fmt.Sprintf("T-%d", i), "Kofi", "Mensah")
			}
			if pg, err := app.ListStudents(ctx, ListOptions{Query: "kofi"}); err != nil || pg.Total != int64(writes) {
				t.Fatalf("the app after the writes: %d, %v", pg.Total, err)
			}
			if err := app.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if h := head(t, s); h.Seq != saved.Seq+int64(writes) || h.Count != 10+writes {
				t.Fatalf("head after Close = position %d, %d students; want %d, %d", h.Seq, h.Count, saved.Seq+int64(writes), 10+writes)
			}
			var why error = errors.New("no load")
			next := reopen(s, func(err error) { why = err })
			if got, err := next.ListStudents(ctx, ListOptions{Query: "kofi"}); err != nil || why != nil || got.Total != int64(writes) {
				t.Fatalf("a new process after Close: %d, %v, %v", got.Total, err, why)
			}
			next.rm.mu.RLock()
			sealed, tail := next.rm.snap.sealed != nil, next.rm.snap.seq-next.rm.snap.saved
			next.rm.mu.RUnlock()
			if !sealed || tail != 0 {
				t.Fatalf("the new process's model: sealed %v, %d entries replayed; want sealed, none", sealed, tail)
			}
		})
	}
}

// A saved payload whose checksum holds but whose content is damaged (cut
// anywhere, a byte changed anywhere: blocks, records, keys, orders) is
// refused, or loads into a model every read of which works: the reads
// of a loaded model trust it (checkSealed), so it never panics.
func TestSavedModelDamagedPayloadChecked(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var docs []*studentDoc
	for i := range 3000 { // texts and records past dictFrom: dictionaries saved
		st := Student{ID: int64(2*i + 1), RegistrationNo: fmt.Sprintf("R-%d", i), FirstName: "Nia", SecondName: fmt.Sprintf("Kamau%d", i%7), CreatedAt: at, UpdatedAt: at}
		benchRecord(&st, i)
		doc := newStudentDoc(st)
		docs = append(docs, &doc)
	}
	sn := buildSnapshot(docs, 5, at)
	sn.seal()
	if sn.sealed.tdict == nil {
		t.Fatal("no dictionary: the payload would not hold one")
	}
	payload := encodeSnapshot(sn, "tenant")
	if _, err := decodeSnapshot(payload, "tenant", 5, at); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for off := 0; off < len(payload); off += 1 + len(payload)/997 {
		if _, err := decodeSnapshot(payload[:off], "tenant", 5, at); err == nil {
			t.Fatalf("a payload cut at %d of %d bytes loaded", off, len(payload))
		}
		for _, x := range []byte{0x01, 0x80, 0xff} {
			bad := slices.Clone(payload)
			bad[off] ^= x
			got, err := decodeSnapshot(bad, "tenant", 5, at)
			if err != nil {
				refused++
				continue
			}
			for pos := range got.count() { // every read works
				got.view(pos)
				got.key(ordFirst, pos, nil)
				got.key(ordRegNo, pos, nil)
			}
			got.page(ListOptions{Query: "nia kamau3", PerPage: 50}, 50)
			got.page(ListOptions{Sort: "first_name", PerPage: 50}, 50)
		}
	}
	if refused == 0 {
		t.Fatal("no damaged payload refused")
	}
}
