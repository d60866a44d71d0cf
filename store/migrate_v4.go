package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Schema 4 stores the students' _ids as zero-padded strings (studentid.go).
// A document's _id cannot change in place, so, as for schema 2, the
// students are copied: every document as it is (operation marks included)
// but its _id, to students_v4; meta {_id: "migration_v4"} records when the
// copy is complete; then students becomes students_v3, students_v4
// becomes students, students_v3 is dropped and the record deleted. Migrate
// then makes the indexes of the new collection. Every step can be
// repeated: a run that stops anywhere (crash, deadline) is finished by the
// next run. Run it with the tenant's apps stopped, as every migration.
const (
	colStudentsV4  = "students_v4"
	colStudentsV3  = "students_v3"
	migrationV4Doc = "migration_v4"
)

// migrateStudentIDs gives every student its string _id; it does nothing
// (one indexed look-up on MongoDB, one pass on FerretDB, at migration
// only) when none has a number _id.
func (s *Store) migrateStudentIDs(ctx context.Context) error {
	copied, err := s.metaFlag(ctx, migrationV4Doc)
	if err != nil {
		return err
	}
	if !copied {
		names, err := s.db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("convert student IDs: list collections: %w", err)
		}
		if !slices.Contains(names, colStudents) {
			return nil
		}
		err = s.col(colStudents).FindOne(ctx, d("_id", d("$not", d("$type", "string"))),
			options.FindOne().SetProjection(d("_id", 1))).Err()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("convert student IDs: look for number IDs: %w", err)
		}
		if err := s.copyStudentIDs(ctx); err != nil {
			return fmt.Errorf("convert student IDs: %w", err)
		}
		if err := s.migrationCut("copied"); err != nil {
			return err
		}
		if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", migrationV4Doc),
			d("$set", d("copied", true)), options.UpdateOne().SetUpsert(true)); err != nil {
			return fmt.Errorf("convert student IDs: record the copy: %w", err)
		}
	}
	if s.beforeSwap != nil {
		if err := s.beforeSwap(); err != nil {
			return err
		}
	}
	return s.swapStudents(ctx, colStudentsV4, colStudentsV3, migrationV4Doc)
}

// copyStudentIDs writes every student with its string _id to students_v4,
// starting over from an empty students_v4.
func (s *Store) copyStudentIDs(ctx context.Context) error {
	return s.copyStudents(ctx, colStudentsV4, func(raw bson.Raw) (any, error) { return withStringID(raw) })
}

// copyStudents writes convert of every student to the collection to, in
// batches (s.beforeCopyBatch before each), starting over from an empty
// one. Shared by the copies of schemas 2 (migrate_v2.go) and 4.
func (s *Store) copyStudents(ctx context.Context, to string, convert func(bson.Raw) (any, error)) error {
	if err := s.col(to).Drop(ctx); err != nil {
		return fmt.Errorf("drop an unfinished copy: %w", err)
	}
	cur, err := s.col(colStudents).Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("read students: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	size := copyBatch
	if s.copyBatch > 0 {
		size = s.copyBatch
	}
	batch := make([]any, 0, size)
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if s.beforeCopyBatch != nil {
			if err := s.beforeCopyBatch(n); err != nil {
				return err
			}
		}
		if _, err := s.col(to).InsertMany(ctx, batch); err != nil {
			return fmt.Errorf("copy students: %w", err)
		}
		n++
		batch = batch[:0]
		return nil
	}
	for cur.Next(ctx) {
		doc, err := convert(cur.Current)
		if err != nil {
			return err
		}
		batch = append(batch, doc)
		if len(batch) == size {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read students: %w", err)
	}
	return flush()
}

// withStringID is a stored student with its _id in the string form and
// every other field as it is.
func withStringID(raw bson.Raw) (bson.D, error) {
	elems, err := raw.Elements()
	if err != nil {
		return nil, fmt.Errorf("read a student: %w", err)
	}
	doc := make(bson.D, 0, len(elems))
	for _, e := range elems {
		if e.Key() != "_id" {
			doc = append(doc, bson.E{Key: e.Key(), Value: e.Value()})
			continue
		}
		id, ok := studentIDOf(e.Value())
		if !ok {
			return nil, fmt.Errorf("a student's _id %v is neither a number nor a number string", e.Value())
		}
		doc = append(doc, bson.E{Key: "_id", Value: studentID(id)})
	}
	return doc, nil
}

// swapStudents puts the finished copy in place of students (kept as old
// until the copy is in place), drops old and deletes the copy's record:
// each step is skipped when done already.
func (s *Store) swapStudents(ctx context.Context, copyName, oldName, recordID string) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("convert students: list collections: %w", err)
	}
	has := func(n string) bool { return slices.Contains(names, n) }
	if has(copyName) {
		if has(colStudents) {
			if has(oldName) {
				return fmt.Errorf("convert students: %s, %s and %s all exist; resolve by hand", colStudents, oldName, copyName)
			}
			if err := s.rename(ctx, colStudents, oldName); err != nil {
				return err
			}
		}
		if err := s.migrationCut("renamed"); err != nil {
			return err
		}
		if err := s.rename(ctx, copyName, colStudents); err != nil {
			return err
		}
	}
	if err := s.migrationCut("swapped"); err != nil {
		return err
	}
	if err := s.col(oldName).Drop(ctx); err != nil {
		return fmt.Errorf("convert students: drop %s: %w", oldName, err)
	}
	if err := s.migrationCut("dropped"); err != nil {
		return err
	}
	if _, err := s.col(colMeta).DeleteOne(ctx, d("_id", recordID)); err != nil {
		return fmt.Errorf("convert students: clear the copy record: %w", err)
	}
	return nil
}

// migrationCut is a test's crash point between two steps of a copy and
// swap (nil outside tests).
func (s *Store) migrationCut(at string) error {
	if s.cutMigration == nil {
		return nil
	}
	return s.cutMigration(at)
}
