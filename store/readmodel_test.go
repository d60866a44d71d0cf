package store

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Two Stores on one database, as two app instances: every write through
// one is seen by the other's read model at its next read.
func TestReadModelSeesOtherWriters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := newStore(t, Options{ReadModel: ReadModelOn})
	b := New(a.db, Options{ReadModel: ReadModelOn})
	list := func(s *Store, q string) []string {
		t.Helper()
		pg, err := s.ListStudents(ctx, ListOptions{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		return regNos(pg)
	}
	x := mustCreate(t, a, "X-1", "Amina", "Otieno")
	if got := list(b, ""); !slices.Equal(got, []string{"X-1"}) {
		t.Fatalf("b after a's create: %v", got)
	}
	if _, err := a.UpdateStudent(ctx, x.ID, StudentInput{RegistrationNo: "X-1", FirstName: "Zoë", SecondName: "Ñúñez"}); err != nil {
		t.Fatal(err)
	}
	if got := list(b, "zoe nunez"); !slices.Equal(got, []string{"X-1"}) {
		t.Fatalf("b's search after a's update: %v", got)
	}
	if got := list(b, "amina"); len(got) != 0 {
		t.Fatalf("b still finds the old name: %v", got)
	}
	if _, errs, err := b.ImportStudents(ctx, []StudentInput{{RegistrationNo: "I-1", FirstName: "Kofi", SecondName: "Mensah"}, {RegistrationNo: "I-2", FirstName: "Ama", SecondName: "Owusu"}}, nil); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	if got := list(a, ""); !slices.Equal(got, []string{"I-1", "I-2", "X-1"}) {
		t.Fatalf("a after b's import: %v", got)
	}
	if _, err := b.CreateStudent(ctx, StudentInput{RegistrationNo: "x-1", FirstName: "Case", SecondName: "Clash"}); err == nil {
		t.Fatal("b accepted x-1 beside a's X-1")
	}
	if err := b.DeleteStudent(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	if got := list(a, ""); !slices.Equal(got, []string{"I-1", "I-2"}) {
		t.Fatalf("a after b's delete: %v", got)
	}
	if _, err := a.Student(ctx, x.ID); err == nil {
		t.Fatal("a still has the deleted student")
	}
	if n, _ := a.CountStudents(ctx); n != 2 {
		t.Fatalf("a counts %d", n)
	}
}

// The same list and search answers from the read model and from the
// database queries (the MongoDB path, also correct on FerretDB, only slow).
func TestReadModelMatchesQueries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := newStore(t, Options{ReadModel: ReadModelOn})
	db := New(mem.db, Options{ReadModel: ReadModelOff})
	for i, n := range []StudentInput{{RegistrationNo: "C-3", FirstName: "Amina", SecondName: "Odhiambo"}, {RegistrationNo: "a-1", FirstName: "Kofi", SecondName: "Mensah"}, {RegistrationNo: "B-2", FirstName: "amina", SecondName: "Zulu"},
		{RegistrationNo: "E-5", FirstName: "Zanele", SecondName: "Amin"}, {RegistrationNo: "D-4", FirstName: "Kofi", SecondName: "Boateng"}, {RegistrationNo: "F-6", FirstName: "Zoë", SecondName: "Ñúñez"}, {RegistrationNo: "G-7", FirstName: "Émile", SecondName: "Otieno"}} {
		_ = i
		mustCreate(t, mem, n.RegistrationNo, n.FirstName, n.SecondName)
	}
	compare := func(step string, queries []string) {
		t.Helper()
		for _, sort := range []string{"", "registration_no", "-registration_no", "first_name", "-first_name", "second_name", "-second_name", "id", "-id", "bogus"} {
			for _, q := range queries {
				for _, page := range []int{1, 2, 9} {
					o := ListOptions{Query: q, Sort: sort, Page: page, PerPage: 2}
					p1, err1 := mem.ListStudents(ctx, o)
					p2, err2 := db.ListStudents(ctx, o)
					if err1 != nil || err2 != nil {
						t.Fatal(err1, err2)
					}
					if !slices.Equal(regNos(p1), regNos(p2)) || p1.Total != p2.Total || p1.Page != p2.Page || p1.Pages != p2.Pages {
						t.Errorf("%s: %+v: model %v %d/%d/%d, queries %v %d/%d/%d", step, o, regNos(p1), p1.Total, p1.Page, p1.Pages,
							regNos(p2), p2.Total, p2.Page, p2.Pages)
					}
				}
			}
		}
	}
	compare("created", []string{"", "amin", "kofi", "zoe", "e", "nobody", "amina odhiambo"})
	// The search index (searchindex.go), kept up to date by writes: accents,
	// several words, registration numbers, words shorter than a trigram.
	queries := []string{"amina", "nunez", "ÑÚÑEZ", "zoe kofi", "c-3", "A-1", "g-7 emile", "zo", "e ami", "mi", "odhiambo amina", "ina"}
	compare("indexed", queries)
	st, err := mem.ListStudents(ctx, ListOptions{Query: "e-5"})
	if err != nil || len(st.Students) != 1 {
		t.Fatalf("find E-5: %v %v", st, err)
	}
	if _, err := mem.UpdateStudent(ctx, st.Students[0].ID, StudentInput{RegistrationNo: "E-55", FirstName: "Amina", SecondName: "Ñúñez"}); err != nil {
		t.Fatal(err)
	}
	if err := mem.DeleteStudent(ctx, mustFind(t, mem, "a-1").ID); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, mem, "H-8", "Kofi", "Amina")
	compare("after an update, a delete and a create", queries)
}

func mustFind(t *testing.T, s *Store, regNo string) Student {
	t.Helper()
	pg, err := s.ListStudents(t.Context(), ListOptions{Query: regNo})
	if err != nil || len(pg.Students) != 1 {
		t.Fatalf("find %s: %v %v", regNo, pg.Students, err)
	}
	return pg.Students[0]
}

// After another process's bulk change, a loaded model keeps answering from its
// previous snapshot while it loads the school again (no 503 for the
// length of a full load), still applies single writes meanwhile, and
// shows the import once the load ends. A Store on another database never
// sees any of it.
func TestReadModelServesStaleDuringReload(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := newStore(t, Options{ReadModel: ReadModelOn})
	b := New(a.db, Options{ReadModel: ReadModelOn})
	other := newStore(t, Options{ReadModel: ReadModelOn})
	mustCreate(t, a, "S-1", "Amina", "Otieno")
	list := func(s *Store, q string) []string {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		pg, err := s.ListStudents(lctx, ListOptions{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		return regNos(pg)
	}
	if got := list(a, ""); !slices.Equal(got, []string{"S-1"}) {
		t.Fatalf("a before: %v", got)
	}
	release := make(chan struct{})
	var loads atomic.Int32
	a.beforeLoad = func() {
		loads.Add(1)
		<-release
	}
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	// A bulk change journaled as "reload" (as a migration does): rows
	// written straight to the collection.
	for i, in := range []StudentInput{{RegistrationNo: "I-1", FirstName: "Kofi", SecondName: "Mensah"}, {RegistrationNo: "I-2", FirstName: "Ama", SecondName: "Owusu"}} {
		doc := newStudentDoc(Student{ID: int64(1000 + i), RegistrationNo: in.RegistrationNo, FirstName: in.FirstName, SecondName: in.SecondName})
		if _, err := b.col(colStudents).InsertOne(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	b.journal(ctx, journalEntry{Kind: entryReload}, nil)
	// The load is held: the read is answered from the previous snapshot
	// (the old code waited for the load and timed out here).
	if got := list(a, ""); !slices.Equal(got, []string{"S-1"}) {
		t.Fatalf("a during the reload: %v, want the previous snapshot", got)
	}
	if loads.Load() == 0 {
		t.Fatal("no reload started after the other process's import")
	}
	// A single write by the other process is still seen meanwhile.
	mustCreate(t, b, "S-2", "Zoë", "Ñúñez")
	if got := list(a, "zoe"); !slices.Equal(got, []string{"S-2"}) {
		t.Fatalf("a's search during the reload: %v", got)
	}
	close(release)
	want := []string{"I-1", "I-2", "S-1", "S-2"}
	deadline := time.Now().Add(time.Minute)
	for got := list(a, ""); !slices.Equal(got, want); got = list(a, "") {
		if time.Now().After(deadline) {
			t.Fatalf("a after the reload: %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := a.CountStudents(ctx); err != nil || n != 4 {
		t.Fatalf("a counts %d, %v", n, err)
	}
	if got := list(other, ""); len(got) != 0 {
		t.Fatalf("a store on another database sees %v", got)
	}
}

// Remembered searches are forgotten at every change: a repeated search
// after a create, an update, a delete or an import answers the new data.
func TestReadModelSearchCacheFollowsWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{ReadModel: ReadModelOn})
	search := func(q string) []string {
		t.Helper()
		pg, err := s.ListStudents(ctx, ListOptions{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		return regNos(pg)
	}
	a := mustCreate(t, s, "A-1", "Amina", "Otieno")
	for _, step := range []struct {
		name  string
		write func()
		q     string
		want  []string
	}{
		{"first", func() {}, "amina otieno", []string{"A-1"}},
		{"same words, other order", func() {}, "otieno amina", []string{"A-1"}},
		{"create", func() { mustCreate(t, s, "A-2", "Amina", "Otieno") }, "amina otieno", []string{"A-1", "A-2"}},
		{"update", func() {
			if _, err := s.UpdateStudent(ctx, a.ID, StudentInput{RegistrationNo: "A-1", FirstName: "Zoë", SecondName: "Otieno"}); err != nil {
				t.Fatal(err)
			}
		}, "otieno amina", []string{"A-2"}},
		{"import", func() {
			if _, errs, err := s.ImportStudents(ctx, []StudentInput{{RegistrationNo: "A-3", FirstName: "Amina", SecondName: "Otieno"}}, nil); err != nil || errs != nil {
				t.Fatal(errs, err)
			}
		}, "amina otieno", []string{"A-2", "A-3"}},
		{"delete", func() {
			if err := s.DeleteStudent(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
		}, "otieno", []string{"A-2", "A-3"}},
	} {
		if step.name == "delete" {
			if got := search("otieno"); len(got) != 3 { // remembered before the delete
				t.Fatalf("before the delete: %v", got)
			}
		}
		step.write()
		if got := search(step.q); !slices.Equal(got, step.want) {
			t.Errorf("%s: search %q = %v, want %v", step.name, step.q, got, step.want)
		}
	}
}

// A catch-up that takes long (applying a big import) does not hold reads:
// past staleWait they are answered from the snapshot as it is, and see
// the change once it is applied.
func TestReadModelSlowCatchUpDoesNotHoldReads(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := newStore(t, Options{ReadModel: ReadModelOn})
	b := New(a.db, Options{ReadModel: ReadModelOn})
	mustCreate(t, a, "S-1", "Amina", "Otieno")
	if n, err := a.CountStudents(ctx); err != nil || n != 1 {
		t.Fatalf("a counts %d, %v", n, err)
	}
	release := make(chan struct{})
	var held atomic.Int32
	a.beforeApply = func() {
		if held.Add(1) == 1 {
			<-release
		}
	}
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	mustCreate(t, b, "S-2", "Kofi", "Mensah")
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := a.CountStudents(lctx)
	if err != nil || n != 1 {
		t.Fatalf("a during the held catch-up: %d, %v (want the snapshot as it is: 1)", n, err)
	}
	close(release)
	deadline := time.Now().Add(time.Minute)
	for n != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a counts %d after the catch-up, want 2", n)
		}
		time.Sleep(20 * time.Millisecond)
		if n, err = a.CountStudents(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// An update applied in place (snapshot.replace) leaves the snapshot as a
// fresh build of the same students would be: orders, search text and
// positions, and the answers of page.
func TestSnapshotReplaceMatchesRebuild(t *testing.T) {
	t.Parallel()
	mk := func(id int64, reg, first, second string) *studentDoc {
		doc := newStudentDoc(Student{ID: id, RegistrationNo: reg, FirstName: first, SecondName: second})
		return &doc
	}
	base := func() []*studentDoc {
		return []*studentDoc{mk(1, "C-3", "Amina", "Odhiambo"), mk(2, "A-1", "Kofi", "Mensah"), mk(3, "B-2", "Zoë", "Zulu"),
			mk(4, "E-5", "Zanele", "Amin"), mk(5, "D-4", "Kofi", "Boateng")}
	}
	for _, tc := range []struct {
		name string
		doc  *studentDoc
	}{
		{"longer name, first", mk(1, "C-3", "Aminata Wanjiru", "Odhiambo")},
		{"shorter name, middle", mk(3, "B-2", "Z", "Z")},
		{"last, moves in every order", mk(5, "A-0", "Aaron", "Aardvark")},
		{"new registration number", mk(2, "Z-9", "Kofi", "Mensah")},
		{"same values", mk(4, "E-5", "Zanele", "Amin")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn := buildSnapshot(base(), 0, time.Now())
			sn.page(ListOptions{Query: "amin"}, 2) // remembered, must be forgotten
			sn.put(tc.doc)
			var want []*studentDoc
			for _, d := range base() {
				if d.ID == tc.doc.ID {
					d = mk(tc.doc.ID, tc.doc.RegistrationNo, tc.doc.FirstName, tc.doc.SecondName)
				}
				want = append(want, d)
			}
			fresh := buildSnapshot(want, 0, time.Now())
			sameSnapshot(t, tc.name, sn, fresh)
			if got := sn.withKey(tc.doc.RegNoKey); len(got) != 1 || got[0].ID != tc.doc.ID {
				t.Errorf("students with key %q: %v, want %d alone", tc.doc.RegNoKey, got, tc.doc.ID)
			}
			if got, ok := sn.doc(tc.doc.ID); !ok || got.Student != tc.doc.Student {
				t.Errorf("student %d: %+v, %v", tc.doc.ID, got, ok)
			}
			for _, q := range []string{"", "amin", "kofi", "z", "zulu", "aardvark"} {
				for _, sort := range []string{"", "-first_name", "second_name"} {
					o := ListOptions{Query: q, Sort: sort}
					if got, w := regNos(sn.page(o, 2)), regNos(fresh.page(o, 2)); !slices.Equal(got, w) {
						t.Errorf("%+v: %v, want %v", o, got, w)
					}
				}
			}
		})
	}
}

// The journal fails closed: a write made while the kind of server is not
// known yet is journaled (it reaches another process's model), and one
// whose journal append fails is still reported as done, and reaches the
// other process once the append succeeds in the background.
func TestJournalFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	reader := newStore(t, Options{ReadModel: ReadModelOn})
	if _, err := reader.ListStudents(ctx, ListOptions{}); err != nil { // loaded
		t.Fatal(err)
	}
	list := func(q string) []string {
		t.Helper()
		pg, err := reader.ListStudents(ctx, ListOptions{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		return regNos(pg)
	}

	unknown := New(reader.db, Options{QueryTimeout: time.Minute}) // ReadModelAuto: asks the server
	unknown.beforeKind = func() error { return errors.New("the server did not answer buildInfo") }
	mustCreate(t, unknown, "K-1", "Kofi", "Mensah")
	if _, known := unknown.modelKind(ctx); known {
		t.Fatal("the kind of server is known: the test does not test anything")
	}
	if got := list("kofi"); !slices.Equal(got, []string{"K-1"}) {
		t.Fatalf("another process after a write made before the kind was known: %v", got)
	}

	failing := New(reader.db, Options{ReadModel: ReadModelOn, QueryTimeout: time.Minute})
	var fails atomic.Int32
	fails.Store(3)
	failing.beforeAppend = func() error {
		if fails.Add(-1) >= 0 {
			return errors.New("the journal is unreachable")
		}
		return nil
	}
	if _, err := failing.CreateStudent(ctx, StudentInput{RegistrationNo: "F-1", FirstName: "Ama", SecondName: "Owusu"}); err != nil {
		t.Fatalf("a committed write reported as failed: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for got := list("ama"); !slices.Equal(got, []string{"F-1"}); got = list("ama") {
		if time.Now().After(deadline) {
			t.Fatalf("another process never saw the write whose append failed: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := failing.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Closed: nothing runs in the background any more.
	if failing.background(func(context.Context) {}) {
		t.Fatal("background work started after Close")
	}
}
