package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Schema version 2 gives every student its folded keys (fold.go). Old
// documents are converted by copying the collection: on FerretDB's SQLite
// backend an update by numeric _id reads the whole collection, so updating
// 100,000 students one by one would take hours, while a copy is one read
// and batched inserts. The copy goes to students_v2; meta
// {_id: "migration_v2"} records when it is complete; then students becomes
// students_v1, students_v2 becomes students and students_v1 is dropped.
// Every step can be repeated: a run that stops anywhere (crash, deadline)
// is finished by the next run.
//
// Schema 3 (record.go) is the same copy: a student without a status (any
// student of schema 2) is copied with the status "enrolled" and its other
// new fields empty, so a database of either version is converted by one
// pass, and an interrupted conversion is resumed the same way. Run it with the tenant's apps stopped (as
// `campus app --migrate` does before serving): writes made to students
// during the copy would be lost in the swap.
const (
	colStudentsV2  = "students_v2"
	colStudentsV1  = "students_v1"
	migrationV2Doc = "migration_v2"
	// classKeysField is set in the schema document once every student
	// has its class_key (ClassKey): a schema 3 database from before
	// class keys goes through migrateStudentsV2's copy once more (its
	// FerretDB export and, on MongoDB, the class filter read the field).
	classKeysField  = "class_keys"
	copyBatch       = 1000
	regNoKeyIndex   = "registration_no_key_unique"
	maxReportedDups = 1000
)

// ErrRegNoConflicts means some registration numbers differ only in case,
// so the unique index on the lower-case registration number could not be
// created. Everything else is migrated and the app serves; new and changed
// students are still checked against every registration number in any
// case, but without the index two writers racing could both succeed.
// errors.As gives the *RegNoConflictError with the report.
var ErrRegNoConflicts = errors.New("registration numbers that differ only in case")

// RegNoConflict is one registration number (lower-case) held by several
// students.
type RegNoConflict struct {
	Key      string
	Students []Student
}

// RegNoConflictError lists the conflicts, with what to do.
type RegNoConflictError struct {
	Database  string
	Conflicts []RegNoConflict
	Truncated bool // more conflicts than listed
}

func (e *RegNoConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database %s: %d registration numbers are held by several students that differ only in case; "+
		"the database is migrated and served, but registration numbers are not yet unique regardless of case. "+
		"Change or delete all but one student of each (admin: Students), then run `campus manage TENANT migrate` again:",
		e.Database, len(e.Conflicts))
	for _, c := range e.Conflicts {
		parts := make([]string, len(c.Students))
		for i, st := range c.Students {
			parts[i] = fmt.Sprintf("%q (id %d, %s %s)", st.RegistrationNo, st.ID, st.FirstName, st.SecondName)
		}
		fmt.Fprintf(&b, "\n  %s: %s", c.Key, strings.Join(parts, ", "))
	}
	if e.Truncated {
		b.WriteString("\n  … and more")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRegNoConflicts) true.
func (e *RegNoConflictError) Is(target error) bool { return target == ErrRegNoConflicts }

// migrateStudentsV2 converts the students of a version 1 or 2 database,
// and those of a version 3 one from before class keys; it does nothing
// when every student already has its keys, a status and a class key.
func (s *Store) migrateStudentsV2(ctx context.Context) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("convert students: list collections: %w", err)
	}
	has := func(n string) bool { return slices.Contains(names, n) }
	copied, err := s.metaFlag(ctx, migrationV2Doc)
	if err != nil {
		return err
	}
	if !copied {
		if !has(colStudents) {
			return nil
		}
		var one bson.Raw
		err := s.col(colStudents).FindOne(ctx, d("$or", bson.A{
			d(fieldSearch, d("$exists", false)), d("status", d("$exists", false)), d(fieldClassKey, d("$exists", false)),
		})).Decode(&one)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("convert students: look for old documents: %w", err)
		}
		if err := s.copyStudentsV2(ctx); err != nil {
			return fmt.Errorf("convert students: %w", err)
		}
		if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", migrationV2Doc),
			d("$set", d("copied", true)), options.UpdateOne().SetUpsert(true)); err != nil {
			return fmt.Errorf("convert students: record the copy: %w", err)
		}
	}
	if s.beforeSwap != nil {
		if err := s.beforeSwap(); err != nil {
			return err
		}
	}
	return s.swapStudents(ctx, colStudentsV2, colStudentsV1, migrationV2Doc) // migrate_v4.go
}

// copyStudentsV2 writes every student, with its keys, to students_v2,
// starting over from an empty students_v2.
func (s *Store) copyStudentsV2(ctx context.Context) error {
	return s.copyStudents(ctx, colStudentsV2, func(raw bson.Raw) (any, error) { // migrate_v4.go
		st, err := decodeStudent(raw)
		if err != nil {
			return nil, fmt.Errorf("decode student: %w", err)
		}
		return newStudentDoc(st), nil
	})
}

func (s *Store) metaFlag(ctx context.Context, id string) (bool, error) {
	var doc struct {
		Copied bool `bson:"copied"`
	}
	err := s.col(colMeta).FindOne(ctx, d("_id", id)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", id, err)
	}
	return doc.Copied, nil
}

// classKeyed reports whether every student has its class key
// (classKeysField).
func (s *Store) classKeyed(ctx context.Context) (bool, error) {
	var doc struct {
		Keyed bool `bson:"class_keys"`
	}
	err := s.col(colMeta).FindOne(ctx, d("_id", schemaDocID)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", schemaDocID, err)
	}
	return doc.Keyed, nil
}

func (s *Store) rename(ctx context.Context, from, to string) error {
	db := s.db.Name()
	err := s.db.Client().Database("admin").RunCommand(ctx, bson.D{
		{Key: "renameCollection", Value: db + "." + from}, {Key: "to", Value: db + "." + to},
	}).Err()
	if err != nil {
		return fmt.Errorf("convert students: rename %s to %s: %w", from, to, err)
	}
	return nil
}

// createRegNoKeyIndex makes registration numbers unique regardless of
// case; when students already conflict it returns a *RegNoConflictError.
func (s *Store) createRegNoKeyIndex(ctx context.Context) error {
	_, err := s.col(colStudents).Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    d(fieldRegNoKey, 1),
		Options: options.Index().SetName(regNoKeyIndex).SetUnique(true),
	})
	if err == nil {
		return nil
	}
	// FerretDB's SQLite backend answers InternalError, not E11000.
	if !mongo.IsDuplicateKeyError(err) && !strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("create index %s: %w", regNoKeyIndex, err)
	}
	conflicts, truncated, rerr := s.regNoConflicts(ctx)
	if rerr != nil {
		return fmt.Errorf("create index %s: %w", regNoKeyIndex, errors.Join(err, rerr))
	}
	if len(conflicts) == 0 { // resolved meanwhile: try again next run
		return fmt.Errorf("create index %s: %w", regNoKeyIndex, err)
	}
	return &RegNoConflictError{Database: s.DatabaseName(), Conflicts: conflicts, Truncated: truncated}
}

// regNoConflicts finds the registration numbers that several students
// share regardless of case, sorted, at most maxReportedDups of them.
func (s *Store) regNoConflicts(ctx context.Context) ([]RegNoConflict, bool, error) {
	cur, err := s.col(colStudents).Find(ctx, bson.D{})
	if err != nil {
		return nil, false, fmt.Errorf("look for conflicting registration numbers: %w", err)
	}
	var docs []studentDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, false, fmt.Errorf("look for conflicting registration numbers: %w", err)
	}
	all := make([]Student, len(docs))
	for i := range docs {
		all[i] = docs[i].Student
	}
	byKey := map[string][]Student{}
	for _, st := range all {
		k := regNoKey(st.RegistrationNo)
		byKey[k] = append(byKey[k], st)
	}
	var out []RegNoConflict
	for k, sts := range byKey {
		if len(sts) > 1 {
			slices.SortFunc(sts, func(a, b Student) int { return int(a.ID - b.ID) })
			out = append(out, RegNoConflict{Key: k, Students: sts})
		}
	}
	slices.SortFunc(out, func(a, b RegNoConflict) int { return strings.Compare(a.Key, b.Key) })
	if len(out) > maxReportedDups {
		return out[:maxReportedDups], true, nil
	}
	return out, false, nil
}
