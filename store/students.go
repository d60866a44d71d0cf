package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Paging defaults.
const (
	DefaultPerPage = 50
	MaxPerPage     = 1000 // the admin list's "all" (app: maxShowAll)
)

// sortFields maps ListOptions.Sort names to document fields: the folded
// keys, so that order ignores case and accents.
var sortFields = map[string]string{
	"registration_no": fieldRegNoKey,
	"first_name":      fieldFirstNameKey,
	"second_name":     fieldSecondNameKey,
	"id":              "_id",
}

// studentDoc is a student as stored: the record and its derived fields.
type studentDoc struct {
	Student       `bson:",inline"`
	RegNoKey      string `bson:"registration_no_key"`
	FirstNameKey  string `bson:"first_name_key"`
	SecondNameKey string `bson:"second_name_key"`
	Search        string `bson:"search"`
	ClassKey      string `bson:"class_key"`
}

// newStudentDoc derives the stored fields of st; a student without a
// status (schema 2) is enrolled.
func newStudentDoc(st Student) studentDoc {
	if st.Status == "" {
		st.Status = StatusEnrolled
	}
	return studentDoc{Student: st, RegNoKey: regNoKey(st.RegistrationNo),
		FirstNameKey: Fold(st.FirstName), SecondNameKey: Fold(st.SecondName),
		Search: searchText(st.RegistrationNo, st.FirstName, st.SecondName) + searchExtra(&st), ClassKey: ClassKey(st.Class)}
}

// regNoExists reports whether a student other than exceptID (0: none) has
// the registration number, in any case.
func (s *Store) regNoExists(ctx context.Context, regNo string, exceptID int64) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return false, fmt.Errorf("look up registration number: %w", err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		for _, doc := range s.rm.snap.withKey(regNoKey(regNo)) { // conflicting twins: all of them
			if doc.ID != exceptID {
				return true, nil
			}
		}
		return false, nil
	}
	filter := bson.D{{Key: fieldRegNoKey, Value: regNoKey(regNo)}}
	if exceptID != 0 {
		filter = append(filter, bson.E{Key: "_id", Value: d("$ne", studentID(exceptID))})
	}
	n, err := s.countStudents(ctx, filter, options.Count().SetLimit(1))
	if err != nil {
		return false, fmt.Errorf("look up registration number: %w", err)
	}
	return n > 0, nil
}

func dupRegNo(regNo string) error {
	return fmt.Errorf("registration number %q: %w", regNo, ErrDuplicateRegNo)
}

// CreateStudent validates in (FieldErrors on bad input) and inserts it.
// A registration number that exists already gives ErrDuplicateRegNo.
func (s *Store) CreateStudent(ctx context.Context, in StudentInput) (Student, error) {
	in, fe := normalizeStudentAt(in, s.now())
	if fe != nil {
		return Student{}, fe
	}
	// Checked first so that a duplicate does not use up an ID; the unique
	// index settles races.
	if exists, err := s.regNoExists(ctx, in.RegistrationNo, 0); err != nil {
		return Student{}, fmt.Errorf("create student: %w", err)
	} else if exists {
		return Student{}, dupRegNo(in.RegistrationNo)
	}
	id, err := s.allocateIDs(ctx, 1)
	if err != nil {
		return Student{}, fmt.Errorf("create student: %w", err)
	}
	now := s.now()
	st := in.Student()
	st.ID, st.CreatedAt, st.UpdatedAt = id, now, now
	ctx, cancel := s.bound(ctx)
	defer cancel()
	doc := newStudentDoc(st)
	st = doc.Student // with its status
	if _, err := s.col(colStudents).InsertOne(ctx, doc); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return Student{}, dupRegNo(in.RegistrationNo)
		}
		return Student{}, fmt.Errorf("create student: %w", s.full(err))
	}
	s.journal(ctx, journalEntry{Kind: entryPut, Student: &doc}, nil)
	return st, nil
}

// Student returns one student or ErrNotFound.
func (s *Store) Student(ctx context.Context, id int64) (Student, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return Student{}, fmt.Errorf("read student %d: %w", id, err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		doc, ok := s.rm.snap.doc(id)
		if !ok {
			return Student{}, fmt.Errorf("student %d: %w", id, ErrNotFound)
		}
		return doc.Student, nil
	}
	found, err := s.findStudents(ctx, d("_id", studentID(id)), nil)
	if err != nil {
		return Student{}, fmt.Errorf("read student %d: %w", id, err)
	}
	if len(found) == 0 {
		return Student{}, fmt.Errorf("student %d: %w", id, ErrNotFound)
	}
	return found[0], nil
}

// UpdateStudent replaces the fields of student id. Errors: FieldErrors,
// ErrNotFound, ErrDuplicateRegNo (nothing changed).
func (s *Store) UpdateStudent(ctx context.Context, id int64, in StudentInput) (Student, error) {
	in, fe := normalizeStudentAt(in, s.now())
	if fe != nil {
		return Student{}, fe
	}
	if exists, err := s.regNoExists(ctx, in.RegistrationNo, id); err != nil {
		return Student{}, fmt.Errorf("update student %d: %w", id, err)
	} else if exists {
		return Student{}, dupRegNo(in.RegistrationNo)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	upd := in.Student()
	upd.UpdatedAt = s.now()
	doc := newStudentDoc(upd)
	st, err := s.writeByHand(ctx, id, doc)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return Student{}, fmt.Errorf("student %d: %w", id, ErrNotFound)
	case mongo.IsDuplicateKeyError(err):
		return Student{}, dupRegNo(in.RegistrationNo)
	case err != nil:
		return Student{}, fmt.Errorf("update student %d: %w", id, s.full(err))
	}
	doc = newStudentDoc(st)
	s.journal(ctx, journalEntry{Kind: entryPut, Student: &doc}, nil)
	return st, nil
}

// DeleteStudent deletes one student or returns ErrNotFound.
func (s *Store) DeleteStudent(ctx context.Context, id int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res, err := s.col(colStudents).DeleteOne(ctx, d("_id", studentID(id)))
	if err != nil {
		return fmt.Errorf("delete student %d: %w", id, s.full(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("student %d: %w", id, ErrNotFound)
	}
	s.journal(ctx, journalEntry{Kind: entryDelete, IDs: []int64{id}}, nil)
	return nil
}

// DeleteStudents deletes the students with the given IDs (unknown IDs are
// skipped) as one operation (operations.go) with one history entry per
// student (by actor), and returns how many were deleted: all of them or
// none, to every reader, also across a crash.
func (s *Store) DeleteStudents(ctx context.Context, ids []int64, actor Actor) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := s.RecoverOperations(ctx); err != nil {
		return 0, fmt.Errorf("delete %d students: nothing deleted: %w", len(ids), s.full(err))
	}
	gone, err := s.StudentsByID(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("delete %d students: nothing deleted: %w", len(ids), err)
	}
	if len(gone) == 0 {
		return 0, nil
	}
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	rec := opRecord{Kind: opDelete, UserID: actor.UserID, Username: actor.Username, Deleted: len(gone)}
	entries := make([]HistoryEntry, len(gone))
	for i, st := range gone {
		rec.IDs = append(rec.IDs, st.ID)
		entries[i] = StudentDeleted(actor, st, true)
	}
	op, err := s.beginOp(ctx, rec)
	if err != nil {
		return 0, fmt.Errorf("delete %d students: nothing deleted: %w", len(gone), s.full(err))
	}
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("delete %d students: nothing deleted: %w", len(gone), s.abortOp(ctx, op, s.full(err)))
	}
	if err := s.recordEntries(ctx, op.rec.Seq, entries...); err != nil {
		return fail(err)
	}
	if err := s.commitWrites(ctx, op, journalEntry{Kind: entryDelete, IDs: rec.IDs}, nil); err != nil {
		return fail(err)
	}
	return int64(len(gone)), nil
}

// CountStudents counts every student.
func (s *Store) CountStudents(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return 0, fmt.Errorf("count students: %w", err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		return int64(s.rm.snap.count()), nil
	}
	n, err := s.countStudents(ctx, bson.D{}, nil)
	if err != nil {
		return 0, timeoutError("count students", err)
	}
	return n, nil
}

// searchFilter matches students whose search field contains every word
// of q (folded: case and accents do not matter), literally.
func searchFilter(q string) bson.D {
	words := searchWords(q)
	if len(words) == 0 {
		return bson.D{}
	}
	all := make(bson.A, len(words))
	for i, w := range words {
		all[i] = d(fieldSearch, bson.Regex{Pattern: regexp.QuoteMeta(w)})
	}
	if len(all) == 1 {
		return all[0].(bson.D)
	}
	return d("$and", all)
}

// sortSpec turns ListOptions.Sort into a sort document with _id as the
// tie-break, so pages never overlap.
func sortSpec(sort string) bson.D {
	dir := 1
	if rest, ok := strings.CutPrefix(sort, "-"); ok {
		sort, dir = rest, -1
	}
	field, ok := sortFields[sort]
	if !ok {
		field, dir = fieldRegNoKey, 1
	}
	if field == "_id" {
		return d("_id", dir)
	}
	return bson.D{{Key: field, Value: dir}, {Key: "_id", Value: dir}}
}

// ListStudents returns one page of the students matching o.Query. A page
// past the end gives the last page. A database that does not answer
// within the store's query timeout gives an error wrapping ErrTimeout.
func (s *Store) ListStudents(ctx context.Context, o ListOptions) (Page, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	perPage := o.PerPage
	if perPage < 1 {
		perPage = DefaultPerPage
	}
	perPage = min(perPage, MaxPerPage)
	if s.useModel(ctx) {
		pg, err := s.listFromModel(ctx, o, perPage)
		if err != nil {
			return Page{}, fmt.Errorf("list students: %w", err)
		}
		return pg, nil
	}
	filter := searchFilter(o.Query)
	if o.NamesOnly {
		filter = namesFilter(o.Query)
	}
	filter = append(filter, filterSpec(o)...)

	total, err := s.countStudents(ctx, filter, nil)
	if err != nil {
		return Page{}, timeoutError("list students: count", err)
	}
	pages := max(1, int((total+int64(perPage)-1)/int64(perPage)))
	page := min(max(o.Page, 1), pages)

	students, err := s.findStudents(ctx, filter, options.Find().
		SetSort(sortSpec(o.Sort)).
		SetSkip(int64(page-1)*int64(perPage)).
		SetLimit(int64(perPage)))
	if err != nil {
		return Page{}, timeoutError("list students", err)
	}
	if students == nil {
		students = []Student{}
	}
	return Page{Students: students, Total: total, Page: page, PerPage: perPage, Pages: pages}, nil
}
