package store

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A student edited between ChangeStudents' read and its write (here: in
// the middle of its writes, by a write that bypasses the store) makes
// the change fail with nothing changed, the edit kept, and no row left
// marked: the check is made on the row as the one-key mark found it. On
// e3fd8ad the change overwrote the edit (its filter compared only the
// number and the names). From helper "ids" (branch ids, 52093bb).
func TestChangeStudentsChangedMeanwhile(t *testing.T) {
	s := newStore(t, Options{})
	ctx := t.Context()
	if _, errs, err := s.ImportStudents(ctx, rowsOf("C", 4, "Amina"), nil); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	pg, err := s.ListStudents(ctx, ListOptions{Sort: "id"})
	if err != nil {
		t.Fatal(err)
	}
	ids := []int64{pg.Students[0].ID, pg.Students[1].ID}
	before := map[int64]Student{}
	for _, id := range ids {
		st, err := s.Student(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = st
	}
	var edited int64
	s.beforeInsert = func(int) {
		for _, id := range ids { // the one not written yet
			if !rawStudent(t, s, id).Lookup("upd").IsZero() {
				continue
			}
			if _, err := s.col(colStudents).UpdateOne(ctx, d("_id", studentID(id)), d("$set", d("guardian_phone", "0700 000 001"))); err != nil {
				t.Error(err)
			}
			edited = id
			return
		}
	}
	n, err := s.ChangeStudents(ctx, ids, StudentsChange{SetClass: true, Class: "9Z"}, Actor{UserID: "u1", Username: "boss"})
	s.beforeInsert = nil
	if !errors.Is(err, ErrChangedMeanwhile) || n != 0 {
		t.Fatalf("change: %d, %v; want ErrChangedMeanwhile", n, err)
	}
	if edited == 0 {
		t.Fatal("the hook edited nobody")
	}
	for _, id := range ids {
		raw := rawStudent(t, s, id)
		if !raw.Lookup("upd").IsZero() || !raw.Lookup("prev").IsZero() || held(raw) {
			t.Errorf("student %d left marked: %v", id, raw)
		}
		var m markedStudent // as stored (the hook's edit bypassed the read model)
		if err := bson.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		st := m.Student
		want := before[id]
		if id == edited {
			want.GuardianPhone = "0700 000 001"
		}
		if st.Class != want.Class || st.GuardianPhone != want.GuardianPhone {
			t.Errorf("student %d: class %q phone %q, want %q %q", id, st.Class, st.GuardianPhone, want.Class, want.GuardianPhone)
		}
	}
}

// changeFixture is a school of 6 students and a bulk change of class of
// the first four; after is what the change gives.
type changeFixture struct {
	s      *Store
	ids    []int64
	before []string
	after  []string
}

func newChangeFixture(t *testing.T, mode ReadModelMode) changeFixture {
	t.Helper()
	f := changeFixture{s: newStore(t, Options{ReadModel: mode})}
	twin := newStore(t, Options{ReadModel: mode})
	for _, s := range []*Store{f.s, twin} {
		if _, errs, err := s.ImportStudents(t.Context(), rowsOf("K", 6, "Amina"), nil); err != nil || errs != nil {
			t.Fatal(errs, err)
		}
	}
	pg, err := f.s.ListStudents(t.Context(), ListOptions{Sort: "id"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range pg.Students[:4] {
		f.ids = append(f.ids, st.ID)
	}
	f.before = register(t, f.s)
	if _, err := twin.ChangeStudents(t.Context(), f.ids, f.change(), CommandLine); err != nil {
		t.Fatal(err)
	}
	f.after = register(t, twin)
	return f
}

func (f changeFixture) change() StudentsChange { return StudentsChange{SetClass: true, Class: "4D"} }

// noMarksLeft fails when a row holds a mark or the changes of a rolled
// back operation.
func noMarksLeft(t *testing.T, s *Store, ids []int64) {
	t.Helper()
	v, err := s.opsView(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		raw := rawStudent(t, s, id)
		upd, _ := raw.Lookup("upd").AsInt64OK()
		if held(raw) || !v.counts(upd) {
			t.Errorf("student %d left held or changed by an operation that did not commit: %v", id, raw)
		}
	}
}

// handEdit is a secretary's edit of student id's guardian phone, from
// another process (its own Store).
func handEdit(t *testing.T, s *Store, id int64, phone string) (*Store, StudentInput) {
	t.Helper()
	st, err := s.Student(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	in := st.Input()
	in.GuardianPhone = phone
	return New(s.db, Options{ReadModel: s.opts.ReadModel}), in
}

// TestChangeStudentsCrashAtEachStep kills a bulk change's writer after
// each step of a row (the mark, the write; with a row edited meanwhile,
// before and after the un-mark) and checks that readers see nothing of
// it, that RecoverOperations takes every mark away and rolls it back, an
// edit made meanwhile kept, and that the change then succeeds.
func TestChangeStudentsCrashAtEachStep(t *testing.T) {
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		for _, tc := range []struct {
			point    string
			conflict bool // the second row edited (bypassing the store) before it is marked
		}{
			{"marked", false},
			{"written", false},
			{"unmark", true},
			{"unmarked", true},
		} {
			t.Run(fmt.Sprintf("model%d/%s", mode, tc.point), func(t *testing.T) {
				f := newChangeFixture(t, mode)
				want := f.before
				crashAt(t, f.s.db, tc.point, func(w *Store) {
					die := w.opHook
					rows := 0
					w.opHook = func(at string) {
						if at == "marked" {
							rows++
						}
						if tc.conflict && at == "marked" && rows == 1 {
							// Edited after the read, before its own mark.
							if _, err := w.col(colStudents).UpdateOne(t.Context(), d("_id", studentID(f.ids[1])), d("$set", d("notes", "edited"))); err != nil {
								t.Error(err)
							}
						}
						if !tc.conflict || rows > 1 {
							die(at)
						}
					}
					_, _ = w.ChangeStudents(t.Context(), f.ids, f.change(), CommandLine)
				})
				for name, s := range map[string]*Store{"running reader": f.s, "fresh reader": New(f.s.db, Options{ReadModel: mode})} {
					if got := register(t, s); !slices.Equal(got, want) {
						t.Fatalf("%s sees %v, want %v", name, got, want)
					}
				}
				if n, err := f.s.RecoverOperations(t.Context()); err != nil || n != 1 {
					t.Fatalf("recover: %d, %v; want 1 rolled back", n, err)
				}
				noMarksLeft(t, f.s, f.ids)
				if got := register(t, New(f.s.db, Options{ReadModel: mode})); !slices.Equal(got, want) {
					t.Fatalf("after recovery: %v, want %v", got, want)
				}
				if tc.conflict {
					if raw := rawStudent(t, f.s, f.ids[1]); raw.Lookup("notes").StringValue() != "edited" {
						t.Fatalf("the edit made meanwhile is lost: %v", raw)
					}
					return
				}
				if _, err := f.s.ChangeStudents(t.Context(), f.ids, f.change(), CommandLine); err != nil {
					t.Fatalf("the change again: %v", err)
				}
				if got := register(t, New(f.s.db, Options{ReadModel: mode})); !slices.Equal(got, f.after) {
					t.Fatalf("after the change again: %v, want %v", got, f.after)
				}
			})
		}
	}
}

// TestChangeStudentsConcurrentEdits interleaves a secretary's hand edit
// (another process) and a second bulk change with a bulk change's row
// steps, with and without a crash of the bulk change's writer after its
// write, and checks that the hand edit is never lost (also by the
// roll-back), that the bulk change never commits over it, and that the
// two bulk changes never both hold a row.
func TestChangeStudentsConcurrentEdits(t *testing.T) {
	const phone = "0711 222 333"
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		for _, tc := range []struct {
			name    string
			at      string // the bulk change's step after which the edit comes
			crash   bool   // the bulk change's writer dies after its row write
			wantErr bool   // the bulk change fails (nothing changed)
		}{
			// Between the mark and the write: the write overwrites the
			// hand edit, sees it, and the change aborts; the hand edit,
			// which saw the mark, writes itself again.
			{"between mark and write", "marked", false, true},
			{"between mark and write, then a crash", "marked", true, true},
			// After the write, before the commit: the hand edit is the
			// later one; it stays whether the change commits or is rolled
			// back (the roll-back restores it from prev).
			{"after the write", "written", false, false},
			{"after the write, then a crash", "written", true, true},
		} {
			t.Run(fmt.Sprintf("model%d/%s", mode, tc.name), func(t *testing.T) {
				f := newChangeFixture(t, mode)
				target := f.ids[0]
				hand, in := handEdit(t, f.s, target, phone)
				handDone := make(chan error, 1)
				handHeld := make(chan struct{})
				var heldOnce sync.Once
				hand.opHook = func(at string) {
					if at == "hand:held" {
						heldOnce.Do(func() { close(handHeld) })
					}
				}
				var otherErr error
				stepped := false
				step := func(at string) {
					if at != tc.at || stepped {
						return
					}
					stepped = true
					if tc.at == "marked" {
						if !tc.crash {
							// A second bulk change of the same row finds it
							// held. (Not beside the crash: its recovery would
							// roll back the "dead" writer at once.)
							other := New(f.s.db, Options{ReadModel: mode})
							_, otherErr = other.ChangeStudents(t.Context(), []int64{target}, StudentsChange{SetClass: true, Class: "5E"}, CommandLine)
						}
						go func() { _, err := hand.UpdateStudent(t.Context(), target, in); handDone <- err }()
						select { // its first write has landed: it waits for the mark
						case <-handHeld:
						case err := <-handDone:
							t.Errorf("the hand edit finished while the row was held: %v", err)
						}
						return
					}
					_, err := hand.UpdateStudent(t.Context(), target, in)
					handDone <- err
				}
				var changeErr error
				if tc.crash {
					crashAt(t, f.s.db, "written", func(w *Store) {
						die := w.opHook
						w.opHook = func(at string) {
							step(at)
							if at == "written" {
								die(at)
							}
						}
						_, changeErr = w.ChangeStudents(t.Context(), f.ids, f.change(), CommandLine)
					})
				} else {
					w := New(f.s.db, Options{ReadModel: mode})
					w.opHook = func(at string) { step(at) }
					_, changeErr = w.ChangeStudents(t.Context(), f.ids, f.change(), CommandLine)
				}
				select {
				case err := <-handDone:
					if err != nil {
						t.Fatalf("hand edit: %v", err)
					}
				case <-time.After(time.Minute):
					t.Fatal("the hand edit never answered")
				}
				if tc.at == "marked" && !tc.crash && !errors.Is(otherErr, ErrChangedMeanwhile) {
					t.Errorf("a second bulk change of a held row: %v, want ErrChangedMeanwhile", otherErr)
				}
				if !tc.crash && (changeErr != nil) != tc.wantErr {
					t.Fatalf("bulk change: %v, want an error %v", changeErr, tc.wantErr)
				}
				if _, err := f.s.RecoverOperations(t.Context()); err != nil {
					t.Fatal(err)
				}
				noMarksLeft(t, f.s, f.ids)
				want := f.after
				if tc.wantErr {
					want = f.before
				}
				for name, s := range map[string]*Store{"running reader": f.s, "fresh reader": New(f.s.db, Options{ReadModel: mode})} {
					st, err := s.Student(t.Context(), target)
					if err != nil {
						t.Fatal(err)
					}
					if st.GuardianPhone != phone {
						t.Errorf("%s: the hand edit is lost: %+v", name, st)
					}
					got := register(t, s)
					// The edited row shows the hand edit's class (the
					// class it read): the rows other than it as want.
					for i, line := range got {
						if line != want[i] && line != f.before[i] {
							t.Errorf("%s: row %q, want %q", name, line, want[i])
						}
					}
				}
			})
		}
	}
}

// TestUpdateImportStaleOnAnyField: a student edited by hand between an
// update import's preview and its apply, in a field the import does not
// carry (the guardian's phone), makes the import fail with nothing
// imported and the edit kept (the row's every field is checked, by its
// `_id` alone). On e3fd8ad only the number and the names were compared,
// and the import overwrote the phone with the value of the preview.
func TestUpdateImportStaleOnAnyField(t *testing.T) {
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		t.Run(fmt.Sprint("model", mode), func(t *testing.T) {
			s := newStore(t, Options{ReadModel: mode})
			ctx := t.Context()
			if _, errs, err := s.ImportStudents(ctx, rowsOf("P", 5, "Amina"), nil); err != nil || errs != nil {
				t.Fatal(errs, err)
			}
			plan, err := s.PlanImport(ctx, rowsOf("P", 5, "Zawadi"), nil, nil, ImportUpdate)
			if err != nil || len(plan.Errors) > 0 || len(plan.Changed) != 5 {
				t.Fatalf("plan: %d changed, %v %v", len(plan.Changed), plan.Errors, err)
			}
			id := plan.Changed[3].Current.ID
			hand, in := handEdit(t, s, id, "0722 000 444")
			if _, err := hand.UpdateStudent(ctx, id, in); err != nil {
				t.Fatal(err)
			}
			before := register(t, s)
			if _, err := s.ApplyImport(ctx, plan, CommandLine); !errors.Is(err, ErrImportStale) {
				t.Fatalf("apply: %v, want ErrImportStale", err)
			}
			if got := register(t, New(s.db, Options{ReadModel: mode})); !slices.Equal(got, before) {
				t.Fatalf("after the refused import: %v, want %v", got, before)
			}
			if st, err := New(s.db, Options{ReadModel: mode}).Student(ctx, id); err != nil || st.GuardianPhone != "0722 000 444" {
				t.Fatalf("the hand edit: %+v, %v", st, err)
			}
			noMarksLeft(t, s, []int64{plan.Changed[0].Current.ID, id})
		})
	}
}

// TestHandEditOverALateMark: a dead writer's last command landing after
// its operation was rolled back and closed leaves a row marked by it
// (hidden: readers show prev). A hand edit of that row answers at once,
// is what readers see, and survives the day-later sweep that rolls the
// operation back once more.
func TestHandEditOverALateMark(t *testing.T) {
	f := newChangeFixture(t, ReadModelOn)
	ctx := t.Context()
	crashAt(t, f.s.db, "written", func(w *Store) { _, _ = w.ChangeStudents(ctx, f.ids, f.change(), CommandLine) })
	if n, err := f.s.RecoverOperations(ctx); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v", n, err)
	}
	_, recs, err := readOps(ctx, f.s.db)
	if err != nil || len(recs) == 0 {
		t.Fatal(recs, err)
	}
	var rec *opRecord
	for _, r := range recs {
		if r.Kind == opChange {
			rec = r
		}
	}
	target := f.ids[2]
	st, err := f.s.Student(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	late := bson.D{{Key: "class", Value: "late"}, {Key: "upd", Value: rec.Seq}, {Key: "prev", Value: prevOf(st)}}
	if _, err := f.s.col(colStudents).UpdateOne(ctx, d("_id", studentID(target)), d("$set", late)); err != nil {
		t.Fatal(err)
	}
	hand, in := handEdit(t, f.s, target, "0733 444 555")
	start := time.Now()
	if _, err := hand.UpdateStudent(ctx, target, in); err != nil {
		t.Fatal(err)
	}
	t.Logf("the hand edit took %v", time.Since(start))
	rec.state = opRolledBack
	if err := f.s.rollBack(ctx, rec); err != nil { // the sweep
		t.Fatal(err)
	}
	got, err := New(f.s.db, Options{}).Student(ctx, target)
	if err != nil || got.GuardianPhone != "0733 444 555" || got.Class != st.Class {
		t.Fatalf("after the sweep: %+v, %v; want the hand edit", got, err)
	}
	noMarksLeft(t, f.s, f.ids)
}

// TestUpdateImportCrashAtEachStep kills an update import's writer after
// a changed row's mark and after its write: readers see none of it, and
// recovery rolls it back with no mark left.
func TestUpdateImportCrashAtEachStep(t *testing.T) {
	for _, point := range []string{"marked", "written"} {
		t.Run(point, func(t *testing.T) {
			s := newStore(t, Options{})
			ctx := t.Context()
			if _, errs, err := s.ImportStudents(ctx, rowsOf("Q", 6, "Amina"), nil); err != nil || errs != nil {
				t.Fatal(errs, err)
			}
			before := register(t, s)
			plan, err := s.PlanImport(ctx, rowsOf("Q", 6, "Zawadi"), nil, nil, ImportUpdate)
			if err != nil || len(plan.Errors) > 0 || len(plan.Changed) != 6 {
				t.Fatalf("plan: %v %v", plan.Errors, err)
			}
			crashAt(t, s.db, point, func(w *Store) { _, _ = w.ApplyImport(ctx, plan, CommandLine) })
			if got := register(t, New(s.db, Options{})); !slices.Equal(got, before) {
				t.Fatalf("a fresh reader sees %v, want %v", got, before)
			}
			if n, err := s.RecoverOperations(ctx); err != nil || n != 1 {
				t.Fatalf("recover: %d, %v", n, err)
			}
			var ids []int64
			for _, c := range plan.Changed {
				ids = append(ids, c.Current.ID)
			}
			noMarksLeft(t, s, ids)
			if _, err := s.ApplyImport(ctx, plan, CommandLine); err != nil {
				t.Fatalf("the import again: %v", err)
			}
		})
	}
}
