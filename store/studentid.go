package store

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Schema 4 stores a student's ID in the students collection as a string
// of studentIDWidth digits, zero-padded ("0000000000000000042"), while
// Student.ID stays an int64 everywhere above the storage encoding (URLs,
// forms, read model, history references, selections, ID claims). FerretDB
// v1 hands SQLite an _id equality only for a string or ObjectID _id in a
// one-key filter (internal/backends/sqlite/collection.go): with int64
// _ids, every find, write or delete of one student read the table until
// it met the row (4–7 s for the newest of 100,000). 19 digits hold every
// non-negative int64, so the string order is the number order for good,
// and a sort or range on _id means what it meant.
//
// Every filter, $in, $ne, range, sort value and decoding of a students
// _id goes through this file: studentID and studentIDs for the values,
// studentKey (a field type) and studentIDOf (a raw value) for reading,
// studentDoc's and markedStudent's BSON methods for whole documents. A
// reader also accepts the int64 form, so that a database of schema 3
// (before migrateStudentIDs) or an older backup reads the same.
const studentIDWidth = 19

// studentID is the stored form of a student's ID, for filters and
// documents of the students collection.
func studentID(id int64) any { return studentIDString(id) }

// studentIDString is studentID's string.
func studentIDString(id int64) string {
	if id < 0 { // never made by nextIDs; kept distinct and sortable anyway
		return fmt.Sprintf("%020d", id)
	}
	s := strconv.FormatInt(id, 10)
	if len(s) >= studentIDWidth {
		return s
	}
	const zeros = "0000000000000000000"
	return zeros[:studentIDWidth-len(s)] + s
}

// studentIDs is studentID of each, for an $in.
func studentIDs(ids []int64) bson.A {
	out := make(bson.A, len(ids))
	for i, id := range ids {
		out[i] = studentID(id)
	}
	return out
}

// parseStudentID reads a stored string ID.
func parseStudentID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("student _id %q is not a number", s)
	}
	return id, nil
}

// studentIDOf reads a students _id from a raw value: the string of
// schema 4 or the int64 (or int32) of older schemas.
func studentIDOf(v bson.RawValue) (int64, bool) {
	if s, ok := v.StringValueOK(); ok {
		id, err := parseStudentID(s)
		return id, err == nil
	}
	switch v.Type {
	case bson.TypeInt64:
		return v.Int64(), true
	case bson.TypeInt32:
		return int64(v.Int32()), true
	}
	return 0, false
}

// studentKey is a students _id as a field: written as the string of
// studentID, read from either form.
type studentKey int64

// MarshalBSONValue writes the string form: its length with the final
// NUL (int32, little-endian), the digits, a NUL.
func (k studentKey) MarshalBSONValue() (byte, []byte, error) {
	s := studentIDString(int64(k))
	b := make([]byte, 4, 4+len(s)+1)
	binary.LittleEndian.PutUint32(b, uint32(len(s)+1))
	b = append(append(b, s...), 0)
	return byte(bson.TypeString), b, nil
}

// UnmarshalBSONValue reads the string form, or an int of an older schema.
func (k *studentKey) UnmarshalBSONValue(t byte, data []byte) error {
	id, ok := studentIDOf(bson.RawValue{Type: bson.Type(t), Value: data})
	if !ok {
		return fmt.Errorf("student _id of BSON type %s is neither a number string nor an integer", bson.Type(t))
	}
	*k = studentKey(id)
	return nil
}

// The BSON forms of studentDoc and markedStudent: the same fields with the
// _id as a studentKey, which shadows the embedded Student's int64 _id (the
// shallower field wins, as in Go).
type (
	studentDocFields    studentDoc
	markedStudentFields markedStudent
	studentDocBSON      struct {
		Key studentKey       `bson:"_id"`
		Doc studentDocFields `bson:",inline"`
	}
	markedStudentBSON struct {
		Key studentKey          `bson:"_id"`
		Doc markedStudentFields `bson:",inline"`
	}
	studentBSON struct {
		Key     studentKey `bson:"_id"`
		Student `bson:",inline"`
	}
)

// MarshalBSON writes the document with its string _id.
func (doc studentDoc) MarshalBSON() ([]byte, error) {
	return bson.Marshal(studentDocBSON{Key: studentKey(doc.ID), Doc: studentDocFields(doc)})
}

// UnmarshalBSON reads a stored student of any schema.
func (doc *studentDoc) UnmarshalBSON(b []byte) error {
	var w studentDocBSON
	if err := bson.Unmarshal(b, &w); err != nil {
		return err
	}
	*doc = *w.studentDoc()
	return nil
}

// studentDoc is the document read, with its ID.
func (w *studentDocBSON) studentDoc() *studentDoc {
	doc := (*studentDoc)(&w.Doc)
	doc.ID = int64(w.Key)
	return doc
}

// UnmarshalBSON reads a stored student and its marks.
func (m *markedStudent) UnmarshalBSON(b []byte) error {
	var w markedStudentBSON
	if err := bson.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = *w.marked()
	return nil
}

// marked is the student read, with its ID.
func (w *markedStudentBSON) marked() *markedStudent {
	m := (*markedStudent)(&w.Doc)
	m.ID = int64(w.Key)
	return m
}

// decodeStudent reads a stored student (only the record) of any schema.
func decodeStudent(raw bson.Raw) (Student, error) {
	var w studentBSON
	if err := bson.Unmarshal(raw, &w); err != nil {
		return Student{}, err
	}
	w.Student.ID = int64(w.Key)
	return w.Student, nil
}
