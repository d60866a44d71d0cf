package store

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MaxImportRows is the most data rows one CSV file may hold.
const MaxImportRows = 100_000

// csvColumns is the header ExportStudents writes and ParseStudentsCSV
// expects (in any order).
var csvColumns = []string{"registration_no", "first_name", "second_name"}

const (
	defaultInsertBatch = 1000 // documents per insertMany
	lookupBatch        = 5000 // registration numbers per $in look-up
)

// ParseStudentsCSV reads a CSV with a header row naming registration_no,
// first_name, second_name (any order, extra columns refused). It returns
// the valid rows and an error per bad row; rows duplicated within the file
// are bad rows too. A UTF-8 byte order mark, CRLF line ends and blank
// lines are accepted. The error is for problems with the file as a whole:
// no or a bad header, more than MaxImportRows rows, a read failure. A CSV
// syntax error (such as a stray quote) is reported as a RowError and ends
// parsing there. Callers that go on to ImportStudents want
// ParseStudentsCSVLines, which also returns each row's line.
func ParseStudentsCSV(r io.Reader) ([]StudentInput, []RowError, error) {
	rows, _, rowErrs, err := ParseStudentsCSVLines(r)
	return rows, rowErrs, err
}

// ParseStudentsCSVLines is ParseStudentsCSV that also returns the 1-based
// line on which each valid row starts, for ImportStudents.
func ParseStudentsCSVLines(r io.Reader) (rows []StudentInput, lines []int, rowErrs []RowError, err error) {
	br := bufio.NewReader(r)
	if bom, _ := br.Peek(3); string(bom) == "\uFEFF" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // checked per row, as a RowError
	cr.ReuseRecord = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, nil, errors.New("the file is empty; the first row must be the header registration_no,first_name,second_name")
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read header: %w", err)
	}
	pos, err := headerPositions(header)
	if err != nil {
		return nil, nil, nil, err
	}

	firstLine := map[string]int{} // registration number key (regNoKey) → line of its first row
	for n := 0; ; {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				rowErrs = append(rowErrs, RowError{Line: pe.StartLine, Msg: "not valid CSV: " + pe.Err.Error()})
				break
			}
			return nil, nil, nil, fmt.Errorf("read CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if n++; n > MaxImportRows {
			return nil, nil, nil, fmt.Errorf("the file has more than %d rows; split it into smaller files", MaxImportRows)
		}
		if len(rec) != len(csvColumns) {
			rowErrs = append(rowErrs, RowError{Line: line,
				Msg: fmt.Sprintf("expected %d fields, found %d", len(csvColumns), len(rec))})
			continue
		}
		in, fe := NormalizeStudent(StudentInput{
			RegistrationNo: rec[pos["registration_no"]],
			FirstName:      rec[pos["first_name"]],
			SecondName:     rec[pos["second_name"]],
		})
		if fe == nil {
			if prev, ok := firstLine[regNoKey(in.RegistrationNo)]; ok {
				fe = FieldErrors{"registration_no": repeatsMsg(in.RegistrationNo, prev)}
			} else {
				firstLine[regNoKey(in.RegistrationNo)] = line
			}
		}
		if fe != nil {
			rowErrs = append(rowErrs, RowError{Line: line, Msg: rowMessage(fe)})
			continue
		}
		rows = append(rows, in)
		lines = append(lines, line)
	}
	return rows, lines, rowErrs, nil
}

// headerPositions maps each column name to its index; names are matched
// case-insensitively after trimming.
func headerPositions(header []string) (map[string]int, error) {
	want := strings.Join(csvColumns, ",")
	pos := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !strings.Contains(","+want+",", ","+h+",") || h == "" {
			return nil, fmt.Errorf("header column %d %q is not one of %s", i+1, header[i], want)
		}
		if _, dup := pos[h]; dup {
			return nil, fmt.Errorf("header names column %q twice", h)
		}
		pos[h] = i
	}
	for _, c := range csvColumns {
		if _, ok := pos[c]; !ok {
			return nil, fmt.Errorf("header has no %q column; expected %s", c, want)
		}
	}
	return pos, nil
}

// rowMessage formats field errors in column order.
func rowMessage(fe FieldErrors) string {
	var parts []string
	for _, c := range csvColumns {
		if msg, ok := fe[c]; ok {
			parts = append(parts, c+": "+msg)
		}
	}
	return strings.Join(parts, "; ")
}

// ImportStudents inserts all rows or none: rows whose registration number
// already exists in the database are reported as RowErrors (lines are
// taken from lines[i] for rows[i]; with lines nil, row i is taken to be on
// line i+2, below a header) and nothing is inserted. Rows are validated
// again, so invalid or repeated rows are RowErrors too. If an insert fails
// midway (another writer took a registration number meanwhile), the
// students this call inserted are deleted and the error returned.
func (s *Store) ImportStudents(ctx context.Context, rows []StudentInput, lines []int) (int, []RowError, error) {
	if len(rows) > MaxImportRows {
		return 0, nil, fmt.Errorf("import students: %d rows, at most %d", len(rows), MaxImportRows)
	}
	lineOf := func(i int) int {
		if i < len(lines) {
			return lines[i]
		}
		return i + 2
	}

	var rowErrs []RowError
	clean := make([]StudentInput, len(rows))
	firstRow := map[string]int{} // registration number key (regNoKey) → index of its first row
	for i, in := range rows {
		in, fe := NormalizeStudent(in)
		if fe == nil {
			if prev, ok := firstRow[regNoKey(in.RegistrationNo)]; ok {
				fe = FieldErrors{"registration_no": repeatsMsg(in.RegistrationNo, lineOf(prev))}
			} else {
				firstRow[regNoKey(in.RegistrationNo)] = i
			}
		}
		if fe != nil {
			rowErrs = append(rowErrs, RowError{Line: lineOf(i), Msg: rowMessage(fe)})
		}
		clean[i] = in
	}

	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	existing, err := s.existingRegNos(ctx, firstRow)
	if err != nil {
		return 0, nil, fmt.Errorf("import students: %w", err)
	}
	for key, stored := range existing {
		i := firstRow[key]
		msg := fmt.Sprintf("registration_no: %q already exists", clean[i].RegistrationNo)
		if stored != clean[i].RegistrationNo {
			msg = fmt.Sprintf("registration_no: %q already exists as %q (registration numbers are compared without case)", clean[i].RegistrationNo, stored)
		}
		rowErrs = append(rowErrs, RowError{Line: lineOf(i), Msg: msg})
	}
	if len(rowErrs) > 0 {
		sortRowErrors(rowErrs)
		return 0, rowErrs, nil
	}
	if len(clean) == 0 {
		return 0, nil, nil
	}

	first, err := s.allocateIDs(ctx, len(clean))
	if err != nil {
		return 0, nil, fmt.Errorf("import students: %w", err)
	}
	now := s.now()
	inserted := make([]*studentDoc, 0, len(clean))
	for start := 0; start < len(clean); start += s.insertBatch {
		batch := clean[start:min(start+s.insertBatch, len(clean))]
		if s.beforeInsert != nil {
			s.beforeInsert(start / s.insertBatch)
		}
		docs := make([]studentDoc, len(batch))
		for j, in := range batch {
			docs[j] = newStudentDoc(Student{ID: first + int64(start+j), RegistrationNo: in.RegistrationNo,
				FirstName: in.FirstName, SecondName: in.SecondName, CreatedAt: now, UpdatedAt: now})
		}
		if _, err := s.col(colStudents).InsertMany(ctx, docs); err != nil {
			defer s.journal(ctx, journalEntry{Kind: entryReload}, nil) //nolint:errcheck // models reload at worst later
			// Every ID in [first, last] was reserved for this call, so the
			// range is exactly what it inserted.
			last := first + int64(len(clean)) - 1
			_, derr := s.col(colStudents).DeleteMany(context.WithoutCancel(ctx),
				d("_id", bson.D{{Key: "$gte", Value: first}, {Key: "$lte", Value: last}}))
			if derr != nil {
				err = errors.Join(err, fmt.Errorf("undo partial import: %w", derr))
			}
			if mongo.IsDuplicateKeyError(err) {
				err = errors.Join(ErrDuplicateRegNo, err)
			}
			return 0, nil, fmt.Errorf("import students: nothing imported: %w", err)
		}
		for j := range docs {
			inserted = append(inserted, &docs[j])
		}
	}
	// Other processes reload; this one adds the rows it has.
	err = s.journal(ctx, journalEntry{Kind: entryReload}, func(sn *snapshot) { sn.putMany(inserted) })
	if err != nil {
		return len(clean), nil, fmt.Errorf("import students: imported %d, but %w", len(clean), err)
	}
	return len(clean), nil, nil
}

// existingRegNos returns which of the registration number keys exist
// already, each with the registration number as stored.
func (s *Store) existingRegNos(ctx context.Context, set map[string]int) (map[string]string, error) {
	all := make([]string, 0, len(set))
	for r := range set {
		all = append(all, r)
	}
	found := map[string]string{}
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return nil, fmt.Errorf("look up registration numbers: %w", err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		for key := range set {
			if id, ok := s.rm.snap.byKey[key]; ok {
				found[key] = s.rm.snap.byID[id].RegistrationNo
			}
		}
		return found, nil
	}
	for start := 0; start < len(all); start += lookupBatch {
		batch := all[start:min(start+lookupBatch, len(all))]
		cur, err := s.col(colStudents).Find(ctx, d(fieldRegNoKey, d("$in", batch)),
			options.Find().SetProjection(bson.D{{Key: "registration_no", Value: 1}, {Key: "_id", Value: 0}}))
		if err != nil {
			return nil, timeoutError("look up registration numbers", err)
		}
		var docs []struct {
			RegNo string `bson:"registration_no"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return nil, timeoutError("look up registration numbers", err)
		}
		for _, doc := range docs {
			found[regNoKey(doc.RegNo)] = doc.RegNo
		}
	}
	return found, nil
}

// repeatsMsg is the message of a row whose registration number (in any
// case) is on an earlier line of the same file.
func repeatsMsg(regNo string, line int) string {
	return fmt.Sprintf("%q repeats line %d (registration numbers are compared without case)", regNo, line)
}

func sortRowErrors(errs []RowError) {
	slices.SortStableFunc(errs, func(a, b RowError) int { return a.Line - b.Line })
}

// ExportStudents writes every student as CSV with a header row, sorted by
// registration number. Values are written verbatim (ParseStudentsCSV reads
// them back unchanged); see the package documentation about spreadsheets.
func (s *Store) ExportStudents(ctx context.Context, w io.Writer) error {
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	cur, err := s.col(colStudents).Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "registration_no", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	cw := csv.NewWriter(w)
	if err := cw.Write(csvColumns); err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	for cur.Next(ctx) {
		var st Student
		if err := cur.Decode(&st); err != nil {
			return fmt.Errorf("export students: decode: %w", err)
		}
		if err := cw.Write([]string{st.RegistrationNo, st.FirstName, st.SecondName}); err != nil {
			return fmt.Errorf("export students: %w", err)
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	return nil
}
