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
	MaxPerPage     = 500
)

// sortFields maps ListOptions.Sort names to document fields.
var sortFields = map[string]string{
	"registration_no": "registration_no",
	"first_name":      "first_name",
	"second_name":     "second_name",
	"id":              "_id",
}

// allocateIDs reserves n consecutive student IDs and returns the first.
// IDs start at 1, like a SQL sequence; a failed insert leaves a gap.
func (s *Store) allocateIDs(ctx context.Context, n int) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := retryUpsert(func() error {
		return s.col(colCounters).FindOneAndUpdate(ctx, d("_id", colStudents),
			d("$inc", d("seq", int64(n))),
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
		).Decode(&doc)
	})
	if err != nil {
		return 0, fmt.Errorf("allocate %d student ids: %w", n, err)
	}
	return doc.Seq - int64(n) + 1, nil
}

// retryUpsert runs an upsert again when it lost the race to insert the
// document (both tried to insert the same _id); the retry then updates.
func retryUpsert(f func() error) error {
	var err error
	for range 3 {
		if err = f(); !mongo.IsDuplicateKeyError(err) {
			return err
		}
	}
	return err
}

// regNoExists reports whether a student other than exceptID (0: none) has
// the registration number.
func (s *Store) regNoExists(ctx context.Context, regNo string, exceptID int64) (bool, error) {
	filter := bson.D{{Key: "registration_no", Value: regNo}}
	if exceptID != 0 {
		filter = append(filter, bson.E{Key: "_id", Value: d("$ne", exceptID)})
	}
	n, err := s.col(colStudents).CountDocuments(ctx, filter, options.Count().SetLimit(1))
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
	in, fe := NormalizeStudent(in)
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
	st := Student{ID: id, RegistrationNo: in.RegistrationNo, FirstName: in.FirstName,
		SecondName: in.SecondName, CreatedAt: now, UpdatedAt: now}
	if _, err := s.col(colStudents).InsertOne(ctx, st); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return Student{}, dupRegNo(in.RegistrationNo)
		}
		return Student{}, fmt.Errorf("create student: %w", err)
	}
	return st, nil
}

// Student returns one student or ErrNotFound.
func (s *Store) Student(ctx context.Context, id int64) (Student, error) {
	var st Student
	err := s.col(colStudents).FindOne(ctx, d("_id", id)).Decode(&st)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Student{}, fmt.Errorf("student %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Student{}, fmt.Errorf("read student %d: %w", id, err)
	}
	return st, nil
}

// UpdateStudent replaces the fields of student id. Errors: FieldErrors,
// ErrNotFound, ErrDuplicateRegNo (nothing changed).
func (s *Store) UpdateStudent(ctx context.Context, id int64, in StudentInput) (Student, error) {
	in, fe := NormalizeStudent(in)
	if fe != nil {
		return Student{}, fe
	}
	if exists, err := s.regNoExists(ctx, in.RegistrationNo, id); err != nil {
		return Student{}, fmt.Errorf("update student %d: %w", id, err)
	} else if exists {
		return Student{}, dupRegNo(in.RegistrationNo)
	}
	var st Student
	err := s.col(colStudents).FindOneAndUpdate(ctx, d("_id", id),
		d("$set", bson.D{
			{Key: "registration_no", Value: in.RegistrationNo},
			{Key: "first_name", Value: in.FirstName},
			{Key: "second_name", Value: in.SecondName},
			{Key: "updated_at", Value: s.now()},
		}),
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&st)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return Student{}, fmt.Errorf("student %d: %w", id, ErrNotFound)
	case mongo.IsDuplicateKeyError(err):
		return Student{}, dupRegNo(in.RegistrationNo)
	case err != nil:
		return Student{}, fmt.Errorf("update student %d: %w", id, err)
	}
	return st, nil
}

// DeleteStudent deletes one student or returns ErrNotFound.
func (s *Store) DeleteStudent(ctx context.Context, id int64) error {
	res, err := s.col(colStudents).DeleteOne(ctx, d("_id", id))
	if err != nil {
		return fmt.Errorf("delete student %d: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("student %d: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteStudents deletes the students with the given IDs (unknown IDs are
// skipped) and returns how many were deleted.
func (s *Store) DeleteStudents(ctx context.Context, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := s.col(colStudents).DeleteMany(ctx, d("_id", d("$in", ids)))
	if err != nil {
		return 0, fmt.Errorf("delete %d students: %w", len(ids), err)
	}
	return res.DeletedCount, nil
}

// CountStudents counts every student.
func (s *Store) CountStudents(ctx context.Context) (int64, error) {
	n, err := s.col(colStudents).CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("count students: %w", err)
	}
	return n, nil
}

// searchFilter matches q literally and case-insensitively anywhere in the
// registration number or the names.
func searchFilter(q string) bson.D {
	q = strings.TrimSpace(q)
	if q == "" {
		return bson.D{}
	}
	re := bson.Regex{Pattern: regexp.QuoteMeta(q), Options: "i"}
	return d("$or", bson.A{
		d("registration_no", re),
		d("first_name", re),
		d("second_name", re),
	})
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
		field, dir = "registration_no", 1
	}
	if field == "_id" {
		return d("_id", dir)
	}
	return bson.D{{Key: field, Value: dir}, {Key: "_id", Value: dir}}
}

// ListStudents returns one page of the students matching o.Query. A page
// past the end gives the last page.
func (s *Store) ListStudents(ctx context.Context, o ListOptions) (Page, error) {
	perPage := o.PerPage
	if perPage < 1 {
		perPage = DefaultPerPage
	}
	perPage = min(perPage, MaxPerPage)
	filter := searchFilter(o.Query)

	total, err := s.col(colStudents).CountDocuments(ctx, filter)
	if err != nil {
		return Page{}, fmt.Errorf("list students: count: %w", err)
	}
	pages := max(1, int((total+int64(perPage)-1)/int64(perPage)))
	page := min(max(o.Page, 1), pages)

	cur, err := s.col(colStudents).Find(ctx, filter, options.Find().
		SetSort(sortSpec(o.Sort)).
		SetSkip(int64(page-1)*int64(perPage)).
		SetLimit(int64(perPage)))
	if err != nil {
		return Page{}, fmt.Errorf("list students: %w", err)
	}
	students := []Student{}
	if err := cur.All(ctx, &students); err != nil {
		return Page{}, fmt.Errorf("list students: read: %w", err)
	}
	return Page{Students: students, Total: total, Page: page, PerPage: perPage, Pages: pages}, nil
}
