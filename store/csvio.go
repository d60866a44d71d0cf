package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
)

// MaxImportRows is the most data rows one CSV file may hold.
const MaxImportRows = 100_000

// csvColumns are the columns ParseStudentsCSV requires (in any order; see
// headerAliases for the other names accepted). ExportStudents writes
// every field of the record (StudentFieldNames), which imports read back.
var csvColumns = []string{"registration_no", "first_name", "second_name"}

const (
	defaultInsertBatch = 1000 // documents per insertMany
	lookupBatch        = 5000 // registration numbers per $in look-up
)

// headerAliases maps a header cell, lower-cased with spaces, underscores,
// hyphens, dots and '#' removed (headerKey), to its column.
var headerAliases = map[string]string{
	"registrationno": "registration_no", "registrationnumber": "registration_no", "registration": "registration_no",
	"regno": "registration_no", "regnumber": "registration_no", "regnum": "registration_no", "regnr": "registration_no",
	"admno": "registration_no", "admissionno": "registration_no", "admissionnumber": "registration_no",
	"studentno": "registration_no", "studentnumber": "registration_no",
	"firstname": "first_name", "first": "first_name", "givenname": "first_name", "given": "first_name",
	"forename": "first_name", "forenames": "first_name", "firstnames": "first_name",
	"secondname": "second_name", "second": "second_name", "surname": "second_name", "lastname": "second_name",
	"last": "second_name", "familyname": "second_name", "family": "second_name",
	// Schema 3 (record.go).
	"class": "class", "classname": "class", "form": "class", "grade": "class", "stream": "class",
	"dateofbirth": "date_of_birth", "dob": "date_of_birth", "birthdate": "date_of_birth", "birthday": "date_of_birth",
	"born": "date_of_birth", "gender": "gender", "sex": "gender",
	"guardian": "guardian_name", "guardianname": "guardian_name", "parent": "guardian_name", "parentname": "guardian_name",
	"parent/guardian": "guardian_name", "parentorguardian": "guardian_name", "parentguardian": "guardian_name",
	"phone": "guardian_phone", "guardianphone": "guardian_phone", "parentphone": "guardian_phone", "telephone": "guardian_phone",
	"tel": "guardian_phone", "mobile": "guardian_phone", "phoneno": "guardian_phone", "phonenumber": "guardian_phone",
	"guardianphoneno": "guardian_phone", "parentphoneno": "guardian_phone",
	"email": "guardian_email", "guardianemail": "guardian_email", "parentemail": "guardian_email", "mail": "guardian_email",
	"status": "status", "statusdate": "status_date", "statussince": "status_date",
	"enrolled": "enrolled_on", "enrolledon": "enrolled_on", "enrolmentdate": "enrolled_on", "enrollmentdate": "enrolled_on",
	"dateenrolled": "enrolled_on", "enrolment": "enrolled_on", "enrollment": "enrolled_on", "admissiondate": "enrolled_on",
	"dateofadmission": "enrolled_on", "admitted": "enrolled_on",
	"notes": "notes", "note": "notes", "comments": "notes", "comment": "notes", "remarks": "notes",
}

// dateFields are the record's dates: a spreadsheet's own forms of them
// are read (spreadsheetDate).
var dateFields = map[string]bool{"date_of_birth": true, "status_date": true, "enrolled_on": true}

func headerKey(h string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(" _-.#\u00a0", r) {
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(h)))
}

// Encodings ParseStudentsFile reports.
const (
	EncodingUTF8        = "UTF-8"
	EncodingUTF16       = "UTF-16"
	EncodingWindows1252 = "Windows-1252"
)

// MsgSaveAsUTF8 tells people how to save a spreadsheet as CSV UTF-8.
const MsgSaveAsUTF8 = `To be sure names are read right, save the file as "CSV UTF-8": in Excel, File › Save As › ` +
	`"CSV UTF-8 (Comma delimited) (*.csv)"; in LibreOffice, File › Save As › "Text CSV", ` +
	`tick "Edit filter settings" and choose "Unicode (UTF-8)".`

// ParsedCSV is a student file (CSV or .xlsx) read and checked row by row
// (without the database; see PlanImport).
type ParsedCSV struct {
	Rows      []StudentInput // the valid rows
	Lines     []int          // Lines[i] is the 1-based line (a sheet's row) Rows[i] starts on
	Errors    []RowError     // bad rows, in file order
	Format    string         // FormatCSV or FormatXLSX
	Encoding  string         // CSV: EncodingUTF8, EncodingUTF16 or EncodingWindows1252
	Delimiter rune           // CSV: ',', ';' or '\t'
	Sheet     string         // .xlsx: the sheet read
	Ignored   []string       // header cells of the columns ignored (not a student field), in file order
	Notes     []string       // what people should check, such as numbers that may have lost leading zeros
}

// File formats ParseStudents reads.
const (
	FormatCSV  = "CSV"
	FormatXLSX = "XLSX"
)

// ParseStudentsCSV reads a CSV with a header row naming registration_no,
// first_name, second_name (any order, aliases accepted, other columns
// ignored). It returns the valid rows and an error per bad row; rows
// duplicated within the file are bad rows too. See ParseStudentsFile.
func ParseStudentsCSV(r io.Reader) ([]StudentInput, []RowError, error) {
	p, err := ParseStudentsFile(r)
	return p.Rows, p.Errors, err
}

// ParseStudentsCSVLines is ParseStudentsCSV that also returns the 1-based
// line on which each valid row starts.
func ParseStudentsCSVLines(r io.Reader) (rows []StudentInput, lines []int, rowErrs []RowError, err error) {
	p, err := ParseStudentsFile(r)
	return p.Rows, p.Lines, p.Errors, err
}

// ParseStudentsFile is ParseStudents without a file name or sheet: a
// CSV, or an .xlsx workbook's first sheet (recognised by its content).
func ParseStudentsFile(r io.Reader) (ParsedCSV, error) {
	return ParseStudents(r, ParseOptions{})
}

// ParseOptions say what ParseStudents knows of the file.
type ParseOptions struct {
	Name  string // the file's name, if known: one ending in .xlsx must be a workbook
	Sheet string // the .xlsx sheet to read; "" is the first
}

// ParseStudents reads a student file: an .xlsx workbook (the first sheet,
// or o.Sheet; see parseXLSX) when its content is one, otherwise a CSV as
// spreadsheets save it: UTF-8 with or without a byte order mark, UTF-16
// with one, or Windows-1252 when the bytes are not valid UTF-8 and no BOM
// says UTF-8; fields separated by ',', ';' or tab (whichever the header
// uses most); CRLF line ends and blank lines. Header names are matched
// case-, space- and underscore-insensitively, with aliases such as "Reg
// No", "Given name" and "Surname"; columns that name no student field are
// ignored (ParsedCSV.Ignored). A cell that ExportStudents guarded against
// formulas ("'=…") gets its quote back off. The error is for problems with
// the file as a whole: no or a bad header, more than MaxImportRows rows, a
// read failure, a workbook too large or damaged. A CSV syntax error (such
// as a stray quote) is reported as a RowError and ends parsing there.
func ParseStudents(r io.Reader, o ParseOptions) (ParsedCSV, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return ParsedCSV{}, fmt.Errorf("read file: %w", err)
	}
	isXLSX := strings.EqualFold(filepath.Ext(o.Name), ".xlsx")
	switch {
	case bytes.HasPrefix(raw, zipMagic):
		return parseXLSX(raw, o.Sheet)
	case bytes.HasPrefix(raw, oleMagic):
		return ParsedCSV{}, errors.New(msgOldXLS)
	case isXLSX:
		return ParsedCSV{}, fmt.Errorf(msgNotXLSX, filepath.Base(o.Name))
	}
	return parseCSV(raw)
}

func parseCSV(raw []byte) (ParsedCSV, error) {
	text, enc, err := decodeText(raw)
	if err != nil {
		return ParsedCSV{}, err
	}
	p := ParsedCSV{Format: FormatCSV, Encoding: enc, Delimiter: detectDelimiter(text)}
	cr := csv.NewReader(strings.NewReader(text))
	cr.Comma = p.Delimiter
	cr.FieldsPerRecord = -1 // checked per row, as a RowError
	cr.ReuseRecord = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return p, errEmptyFile
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return p, errors.New(csvSyntax(text, pe))
		}
		return p, fmt.Errorf("read header: %w", err)
	}
	rs, err := newRowSink(&p, header)
	if err != nil {
		return p, err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				p.Errors = append(p.Errors, RowError{Line: pe.StartLine, Msg: csvSyntax(text, pe)})
				break
			}
			return p, fmt.Errorf("read CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != rs.width {
			if err := rs.count(); err != nil {
				return p, err
			}
			p.Errors = append(p.Errors, RowError{Line: line,
				Msg: fmt.Sprintf(msgFieldCount, rs.width, len(rec))})
			continue
		}
		if err := rs.add(line, rec); err != nil {
			return p, err
		}
	}
	return p, nil
}

var errEmptyFile = errors.New(msgEmptyFile)

// csvSyntax words a CSV syntax error of text in our own words, with the
// line and the character on it (encoding/csv counts bytes).
func csvSyntax(text string, pe *csv.ParseError) string {
	char := pe.Column
	if pe.Line >= 1 {
		lines := strings.SplitN(text, "\n", pe.Line+1)
		if pe.Line <= len(lines) {
			line := lines[pe.Line-1]
			if b := pe.Column - 1; b >= 0 && b <= len(line) {
				char = utf8.RuneCountInString(line[:b]) + 1
			}
		}
	}
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return fmt.Sprintf(msgCSVBareQuote, pe.Line, char)
	case errors.Is(pe.Err, csv.ErrQuote):
		return fmt.Sprintf(msgCSVQuote, pe.StartLine, pe.Line, char)
	}
	return fmt.Sprintf(msgCSVSyntax, pe.Line, char)
}

// rowSink turns a file's rows, below its header, into ParsedCSV rows and
// row errors: the one path of CSV and .xlsx.
type rowSink struct {
	p         *ParsedCSV
	pos       map[string]int // column → index in a row
	width     int            // cells in the header
	n         int            // data rows so far
	firstLine map[string]int // registration number key → line of its first row
}

func newRowSink(p *ParsedCSV, header []string) (*rowSink, error) {
	pos, ignored, err := headerPositions(header)
	if err != nil {
		return nil, err
	}
	p.Ignored = ignored
	return &rowSink{p: p, pos: pos, width: len(header), firstLine: map[string]int{}}, nil
}

// count counts a data row, refusing one more than MaxImportRows.
func (rs *rowSink) count() error {
	if rs.n++; rs.n > MaxImportRows {
		return fmt.Errorf(msgTooManyRows, MaxImportRows)
	}
	return nil
}

// add checks one row (at least rs.width cells) on line.
func (rs *rowSink) add(line int, rec []string) error {
	if err := rs.count(); err != nil {
		return err
	}
	var st Student
	for _, f := range recordFields {
		if i, ok := rs.pos[f.name]; ok {
			v := unguardCell(rec[i])
			if dateFields[f.name] {
				v = spreadsheetDate(v, rs.p.Format == FormatXLSX)
			}
			f.set(&st, v)
		}
	}
	in, fe := NormalizeStudent(st.Input())
	if fe == nil {
		key := regNoKey(in.RegistrationNo)
		if prev, ok := rs.firstLine[key]; ok {
			fe = FieldErrors{"registration_no": repeatsMsg(in.RegistrationNo, prev)}
		} else {
			rs.firstLine[key] = line
		}
	}
	if fe != nil {
		rs.p.Errors = append(rs.p.Errors, RowError{Line: line, Msg: rowMessage(fe)})
		return nil
	}
	rs.p.Rows = append(rs.p.Rows, in)
	rs.p.Lines = append(rs.p.Lines, line)
	return nil
}

// decodeText turns the file's bytes into UTF-8 text without a BOM.
func decodeText(raw []byte) (string, string, error) {
	switch {
	case bytes.HasPrefix(raw, []byte("\xEF\xBB\xBF")):
		raw = raw[3:]
		if !utf8.Valid(raw) {
			return "", "", fmt.Errorf(msgBadUTF8Line, invalidLine(raw))
		}
	case bytes.HasPrefix(raw, []byte("\xFF\xFE")), bytes.HasPrefix(raw, []byte("\xFE\xFF")):
		dec := unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM).NewDecoder()
		b, err := dec.Bytes(raw)
		if err != nil {
			return "", "", errors.New(msgNotUTF16)
		}
		return string(b), EncodingUTF16, nil
	}
	if utf8.Valid(raw) {
		return string(raw), EncodingUTF8, nil
	}
	b, err := charmap.Windows1252.NewDecoder().Bytes(raw)
	if err != nil || !utf8.Valid(b) {
		return "", "", errors.New(msgNotText)
	}
	return string(b), EncodingWindows1252, nil
}

// invalidLine is the 1-based line of the first byte that is not UTF-8.
func invalidLine(b []byte) int {
	line := 1
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		b = b[size:]
	}
	return line
}

// detectDelimiter picks ',', ';' or tab: whichever the first non-blank
// line (the header) holds most of outside quotes; ',' on a tie.
func detectDelimiter(text string) rune {
	line := ""
	for l := range strings.Lines(text) {
		if strings.TrimSpace(l) != "" {
			line = l
			break
		}
	}
	counts := map[rune]int{}
	quoted := false
	for _, c := range line {
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ',' || c == ';' || c == '\t'):
			counts[c]++
		}
	}
	best := ','
	for _, c := range []rune{';', '\t'} {
		if counts[c] > counts[best] {
			best = c
		}
	}
	return best
}

// headerPositions maps each column to its index; ignored holds the
// header cells that name no column (blank ones left out).
func headerPositions(header []string) (pos map[string]int, ignored []string, err error) {
	want := strings.Join(csvColumns, ",")
	pos = map[string]int{}
	for i, h := range header {
		col, ok := headerAliases[headerKey(h)]
		if !ok {
			if strings.TrimSpace(h) != "" {
				ignored = append(ignored, strings.TrimSpace(h))
			}
			continue
		}
		if _, dup := pos[col]; dup {
			return nil, nil, fmt.Errorf(msgColumnTwice, col)
		}
		pos[col] = i
	}
	if len(pos) == 0 {
		return nil, nil, fmt.Errorf(msgHeaderNone, want)
	}
	for _, c := range csvColumns {
		if _, ok := pos[c]; !ok {
			if len(ignored) > 0 {
				return nil, nil, fmt.Errorf(msgHeaderMissingOther, c, quoteList(ignored), want)
			}
			return nil, nil, fmt.Errorf(msgHeaderMissing, c, want)
		}
	}
	return pos, ignored, nil
}

// rowMessage formats field errors in column order.
func rowMessage(fe FieldErrors) string {
	var parts []string
	for _, f := range recordFields {
		c := f.name
		if msg, ok := fe[c]; ok {
			parts = append(parts, c+": "+msg)
		}
	}
	return strings.Join(parts, "; ")
}

// ---- spreadsheet formula guard ----

// formulaStart reports whether a spreadsheet would read a cell starting
// with c as a formula (or, for tab and CR, shift it).
func formulaStart(c byte) bool { return strings.IndexByte("=+-@\t\r", c) >= 0 }

// guardCell neutralises a cell a spreadsheet would run as a formula by
// prefixing a quote (OWASP's advice). Cells that already start with quotes
// followed by such a character get one more, so that unguardCell gives
// back exactly the original.
func guardCell(s string) string {
	t := strings.TrimLeft(s, "'")
	if t != "" && formulaStart(t[0]) {
		return "'" + s
	}
	return s
}

// unguardCell undoes guardCell.
func unguardCell(s string) string {
	t := strings.TrimLeft(s, "'")
	if len(t) < len(s) && t != "" && formulaStart(t[0]) {
		return s[1:]
	}
	return s
}

// ---- import plan ----

// ImportMode says what an import does with rows whose registration number
// exists already.
type ImportMode string

const (
	ImportAdd    ImportMode = "add"    // such rows are errors; only new students
	ImportUpdate ImportMode = "update" // such rows update the student (matched on registration number)
)

// ImportRow is a row that adds a student.
type ImportRow struct {
	Line  int
	Input StudentInput
}

// ImportChange is a row that changes an existing student.
type ImportChange struct {
	Line    int
	Current Student      // as it is in the database now
	Input   StudentInput // what the row says
}

// ChangedFields names the fields the row changes, in column order.
func (c ImportChange) ChangedFields() []string {
	var out []string
	after := c.After()
	for _, f := range recordFields {
		if f.get(&c.Current) != f.get(&after) {
			out = append(out, f.name)
		}
	}
	return out
}

// After is the student as the row leaves it: a blank cell (or a column
// the file does not have) leaves the field as it is, so that a sheet of
// names and classes does not erase guardians.
func (c ImportChange) After() Student { return mergeRow(c.Current, c.Input) }

func mergeRow(cur Student, in StudentInput) Student {
	out, row := cur, in.Student()
	for _, f := range recordFields {
		if v := f.get(&row); v != "" {
			f.set(&out, v)
		}
	}
	return out
}

// ImportPlan is everything an import would do, worked out without writing:
// the preview shows it and ApplyImport carries out exactly it.
type ImportPlan struct {
	Mode      ImportMode
	File      string // the file's name, for the history entry (set by the caller)
	New       []ImportRow
	Changed   []ImportChange
	Unchanged int
	Errors    []RowError // file and database errors, sorted by line; any error means nothing is written
}

// Valid is the number of rows without errors.
func (p ImportPlan) Valid() int { return len(p.New) + len(p.Changed) + p.Unchanged }

// Fingerprint identifies what the plan writes: a confirmation made on a
// preview is refused when the plan worked out again differs.
func (p ImportPlan) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00", p.Mode, p.Unchanged, len(p.Errors))
	record := func(tag string, st Student) {
		h.Write([]byte(tag))
		for _, f := range recordFields {
			fmt.Fprintf(h, "\x00%s", f.get(&st))
		}
		h.Write([]byte{0})
	}
	for _, r := range p.New {
		record("n", r.Input.Student())
	}
	for _, c := range p.Changed {
		fmt.Fprintf(h, "c\x00%d\x00", c.Current.ID)
		record("", c.Current)
		record("", c.After())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// PlanImport checks rows (as ParseStudentsFile returns them, with its
// row errors fileErrs) against the database and returns what importing
// them in mode would do. Rows are validated again, so unchecked rows are
// safe to pass. lines[i] is the line of rows[i] (nil: row i is on line
// i+2, below a header).
func (s *Store) PlanImport(ctx context.Context, rows []StudentInput, lines []int, fileErrs []RowError, mode ImportMode) (ImportPlan, error) {
	if mode != ImportUpdate {
		mode = ImportAdd
	}
	plan := ImportPlan{Mode: mode, Errors: slices.Clone(fileErrs)}
	if len(rows) > MaxImportRows {
		return plan, fmt.Errorf("plan import: %d rows, at most %d", len(rows), MaxImportRows)
	}
	lineOf := func(i int) int {
		if i < len(lines) {
			return lines[i]
		}
		return i + 2
	}
	type row struct {
		line int
		in   StudentInput
	}
	var good []row
	firstRow := map[string]int{} // key → line of its first row
	for i, in := range rows {
		in, fe := NormalizeStudent(in)
		if fe == nil {
			key := regNoKey(in.RegistrationNo)
			if prev, ok := firstRow[key]; ok {
				fe = FieldErrors{"registration_no": repeatsMsg(in.RegistrationNo, prev)}
			} else {
				firstRow[key] = lineOf(i)
			}
		}
		if fe != nil {
			plan.Errors = append(plan.Errors, RowError{Line: lineOf(i), Msg: rowMessage(fe)})
			continue
		}
		good = append(good, row{lineOf(i), in})
	}

	keys := make([]string, len(good))
	for i, g := range good {
		keys[i] = regNoKey(g.in.RegistrationNo)
	}
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	existing, err := s.studentsByRegNo(ctx, keys)
	if err != nil {
		return plan, fmt.Errorf("plan import: %w", err)
	}
	for _, g := range good {
		cur, found := existing[regNoKey(g.in.RegistrationNo)]
		switch {
		case !found:
			plan.New = append(plan.New, ImportRow{Line: g.line, Input: g.in})
		case mode == ImportAdd:
			msg := fmt.Sprintf(msgExists, g.in.RegistrationNo)
			if cur.RegistrationNo != g.in.RegistrationNo {
				msg = fmt.Sprintf(msgExistsAs, g.in.RegistrationNo, cur.RegistrationNo)
			}
			plan.Errors = append(plan.Errors, RowError{Line: g.line, Exists: true, Msg: "registration_no: " + msg})
		case sameRecord(cur, mergeRow(cur, g.in)):
			plan.Unchanged++
		default:
			plan.Changed = append(plan.Changed, ImportChange{Line: g.line, Current: cur, Input: g.in})
		}
	}
	sortRowErrors(plan.Errors)
	return plan, nil
}

// studentsByRegNo returns the students with the given registration
// number keys (regNoKey), keyed by them: from the read model on FerretDB,
// by the indexed key field on MongoDB.
func (s *Store) studentsByRegNo(ctx context.Context, keys []string) (map[string]Student, error) {
	found := map[string]Student{}
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return nil, fmt.Errorf("look up registration numbers: %w", err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		for _, key := range keys {
			if docs := s.rm.snap.withKey(key); len(docs) > 0 {
				found[key] = docs[0].Student
			}
		}
		return found, nil
	}
	for start := 0; start < len(keys); start += lookupBatch {
		batch := keys[start:min(start+lookupBatch, len(keys))]
		docs, err := s.findStudents(ctx, d(fieldRegNoKey, d("$in", batch)), nil)
		if err != nil {
			return nil, timeoutError("look up registration numbers", err)
		}
		for _, st := range docs {
			found[regNoKey(st.RegistrationNo)] = st
		}
	}
	return found, nil
}

// ErrImportStale is returned by ApplyImport when a student the plan
// changes was changed by someone else after the plan was made.
var ErrImportStale = errors.New("a student changed since the preview")

// ImportResult counts what ApplyImport wrote.
type ImportResult struct{ Added, Updated int }

// ApplyImport carries out a plan without errors as one operation
// (operations.go), with its history entry (by actor): all of it or
// nothing, to every reader, also if this process or the database's dies
// meanwhile. An update only applies to a student still as the plan saw
// it; otherwise (ErrImportStale), or if an insert fails (another writer
// took a registration number: ErrDuplicateRegNo), what this call wrote is
// rolled back and the error returned. Operations left by a writer that is
// gone are rolled back first.
func (s *Store) ApplyImport(ctx context.Context, plan ImportPlan, actor Actor) (ImportResult, error) {
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	op, err := s.beginImport(ctx, plan, actor)
	if err != nil {
		return ImportResult{}, err
	}
	return s.writeImport(ctx, op, plan, actor, nil)
}

// beginImport checks plan, recovers interrupted operations and records
// the import's operation (pending, with its heartbeat): the first half of
// ApplyImport, the part StartImport waits for.
func (s *Store) beginImport(ctx context.Context, plan ImportPlan, actor Actor) (*runningOp, error) {
	if len(plan.Errors) > 0 {
		return nil, fmt.Errorf("apply import: the plan has %d row errors", len(plan.Errors))
	}
	if _, err := s.RecoverOperations(ctx); err != nil {
		return nil, fmt.Errorf("import students: nothing imported: %w", s.full(err))
	}
	rec := opRecord{Kind: opImport, UserID: actor.UserID, Username: actor.Username, Added: len(plan.New), Updated: len(plan.Changed)}
	if len(plan.New) > 0 {
		first, err := s.allocateIDs(ctx, len(plan.New))
		if err != nil {
			return nil, fmt.Errorf("import students: nothing imported: %w", err)
		}
		rec.First, rec.Last = first, first+int64(len(plan.New))-1
	}
	op, err := s.beginOp(ctx, rec)
	if err != nil {
		return nil, fmt.Errorf("import students: nothing imported: %w", s.full(err))
	}
	return op, nil
}

// writeImport writes the rows of op (begun by beginImport), its history
// entry, and commits it; on any failure it rolls op back. done, when not
// nil, counts the rows written.
func (s *Store) writeImport(ctx context.Context, op *runningOp, plan ImportPlan, actor Actor, done *atomic.Int64) (ImportResult, error) {
	rec, seq := op.rec, op.rec.Seq
	fail := func(err error) (ImportResult, error) {
		if mongo.IsDuplicateKeyError(err) {
			err = errors.Join(ErrDuplicateRegNo, err)
		}
		return ImportResult{}, fmt.Errorf("import students: nothing imported: %w", s.abortOp(ctx, op, s.full(err)))
	}
	type insertedDoc struct { // studentDoc's BSON form and the mark
		Key studentKey       `bson:"_id"`
		Doc studentDocFields `bson:",inline"`
		Ins int64            `bson:"ins"`
	}
	now := s.now()
	written := make([]*studentDoc, 0, len(plan.New)+len(plan.Changed))
	for start := 0; start < len(plan.New); start += s.insertBatch {
		batch := plan.New[start:min(start+s.insertBatch, len(plan.New))]
		if s.beforeInsert != nil {
			s.beforeInsert(start / s.insertBatch)
		}
		docs := make([]insertedDoc, len(batch))
		for j, r := range batch {
			st := r.Input.Student()
			st.ID, st.CreatedAt, st.UpdatedAt = rec.First+int64(start+j), now, now
			docs[j] = insertedDoc{studentKey(st.ID), studentDocFields(newStudentDoc(st)), seq}
		}
		if _, err := s.col(colStudents).InsertMany(ctx, docs); err != nil {
			return fail(err)
		}
		for j := range docs {
			written = append(written, (*studentDoc)(&docs[j].Doc))
		}
		if done != nil {
			done.Add(int64(len(docs)))
		}
	}
	var v OpsView // which marks count for writeChecked
	if len(plan.Changed) > 0 {
		var err error
		if v, err = s.opsView(ctx); err != nil {
			return fail(err)
		}
	}
	for _, c := range plan.Changed {
		// Written only over a student still as the plan saw it (every
		// field), checked on the row itself (writeChecked). The previous
		// values stay with the row until the operation ends: readers see
		// them meanwhile.
		st := c.After()
		st.UpdatedAt = now
		doc := newStudentDoc(st)
		if err := s.writeChecked(ctx, v, seq, c.Current, doc, ErrImportStale); err != nil {
			return fail(err)
		}
		written = append(written, &doc)
		if done != nil {
			done.Add(1)
		}
	}
	res := ImportResult{Added: len(plan.New), Updated: len(plan.Changed)}
	if len(written) == 0 {
		op.stop()
		_ = s.closeOp(context.WithoutCancel(ctx), &op.rec)
		return res, nil
	}
	// One entry, and each student's reference to it (historyrefs.go).
	entry := StudentsImported(actor, res.Added+res.Updated)
	entry.ID, entry.File, entry.Mode = bson.NewObjectID().Hex(), plan.File, string(plan.Mode)
	var refs []importRef
	if len(plan.New) > 0 {
		refs = rangeRefs(entry.ID, rec.First, rec.Last)
	}
	refs = append(refs, changedRefs(entry.ID, plan.Changed)...) // with what each row changed (historydiffs.go)
	if err := s.writeRefs(ctx, refs); err != nil {
		return fail(err)
	}
	if err := s.recordEntries(ctx, seq, entry); err != nil {
		return fail(err)
	}
	// Other processes reload; this one puts the rows it wrote.
	if err := s.commitWrites(ctx, op, journalEntry{Kind: entryReload}, func(sn *snapshot) { sn.putMany(written) }); err != nil {
		return fail(err)
	}
	return res, nil
}

// ImportStudents adds all rows or none: PlanImport in ImportAdd mode,
// then ApplyImport when the plan has no errors. Rows whose registration
// number already exists, invalid and repeated rows are RowErrors and
// nothing is inserted.
func (s *Store) ImportStudents(ctx context.Context, rows []StudentInput, lines []int) (int, []RowError, error) {
	plan, err := s.PlanImport(ctx, rows, lines, nil, ImportAdd)
	if err != nil {
		return 0, nil, fmt.Errorf("import students: %w", err)
	}
	if len(plan.Errors) > 0 {
		return 0, plan.Errors, nil
	}
	res, err := s.ApplyImport(ctx, plan, CommandLine)
	if err != nil {
		return 0, nil, err
	}
	return res.Added, nil, nil
}

// studentKeysSet is the $set of a student's editable fields with their
// folded keys and search field.
func studentKeysSet(doc studentDoc) bson.D {
	set := make(bson.D, 0, len(recordFields)+5)
	for _, f := range recordFields {
		set = append(set, bson.E{Key: f.name, Value: f.get(&doc.Student)})
	}
	return append(set,
		bson.E{Key: fieldRegNoKey, Value: doc.RegNoKey},
		bson.E{Key: fieldFirstNameKey, Value: doc.FirstNameKey},
		bson.E{Key: fieldSecondNameKey, Value: doc.SecondNameKey},
		bson.E{Key: fieldSearch, Value: doc.Search},
		bson.E{Key: fieldClassKey, Value: doc.ClassKey},
		bson.E{Key: "updated_at", Value: doc.UpdatedAt},
	)
}

// repeatsMsg is the message of a row whose registration number (in any
// case) is on an earlier line of the same file.
func repeatsMsg(regNo string, line int) string {
	return fmt.Sprintf(msgRepeats, regNo, line)
}

func sortRowErrors(errs []RowError) {
	slices.SortStableFunc(errs, func(a, b RowError) int { return a.Line - b.Line })
}

// ---- export ----

// ExportOptions choose what ExportStudents writes. The zero value writes
// every student as CSV, with a byte order mark.
type ExportOptions struct {
	Query  string  // only students matching this search, as the list's search box
	NoBOM  bool    // CSV: leave out the UTF-8 byte order mark (Excel needs it to read UTF-8)
	Format string  // ExportCSV ("" too) or ExportXLSX
	IDs    []int64 // only these students (nil: every one matching Query): the admin list's export action
	// Filters: only students passing its Class, Status and EnrolledYear
	// (the admin list's filters); its other fields are not used.
	Filters ListOptions
}

// rowWriter is the CSV or the .xlsx writer of an export.
type rowWriter interface {
	Write(rec []string) error
	Close() error // writes out what is left
	Abort()       // after an error: frees what Close would have
}

// csvWriter writes an export's rows as CSV. Cells a spreadsheet would run
// as a formula (those starting with '=', '+', '-', '@', tab or CR) are
// prefixed with a quote; ParseStudents takes it off again.
type csvWriter struct{ cw *csv.Writer }

func (c csvWriter) Write(rec []string) error {
	g := make([]string, len(rec))
	for i, v := range rec {
		g[i] = guardCell(v)
	}
	return c.cw.Write(g)
}

func (c csvWriter) Close() error { c.cw.Flush(); return c.cw.Error() }
func (c csvWriter) Abort()       {}

func newRowWriter(w io.Writer, o ExportOptions) (rowWriter, error) {
	switch o.Format {
	case ExportXLSX:
		return newXLSXWriter(w)
	case ExportCSV, "":
		if !o.NoBOM {
			if _, err := io.WriteString(w, "\uFEFF"); err != nil {
				return nil, err
			}
		}
		return csvWriter{csv.NewWriter(w)}, nil
	}
	return nil, fmt.Errorf("unknown export format %q (csv or xlsx)", o.Format)
}

// ExportStudents writes students with a header row, sorted by
// registration number, as CSV or as an .xlsx workbook (o.Format). Neither
// lets a spreadsheet run a cell as a formula (csvWriter, xlsxWriter), and
// ParseStudents reads both back to the same students.
func (s *Store) ExportStudents(ctx context.Context, w io.Writer, o ExportOptions) (err error) {
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	v, err := s.opsView(ctx)
	if err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	cur, err := s.col(colStudents).Find(ctx, v.studentFilter(append(searchFilter(o.Query), filterSpec(o.Filters)...)),
		options.Find().SetSort(bson.D{{Key: "registration_no", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	cw, err := newRowWriter(w, o)
	if err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	defer func() {
		if err != nil {
			cw.Abort()
		}
	}()
	if err := cw.Write(StudentFieldNames()); err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	only := idSet(o.IDs)
	for cur.Next(ctx) {
		var w markedStudentBSON // straight into the BSON form (studentid.go)
		if err := cur.Decode(&w); err != nil {
			return fmt.Errorf("export students: decode: %w", err)
		}
		m := w.marked()
		st := m.Student
		if !v.resolve(&st, m.Marks) || only != nil && !only[st.ID] {
			continue
		}
		row := make([]string, len(recordFields))
		for i, f := range recordFields {
			row[i] = f.get(&st)
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("export students: %w", err)
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("export students: %w", err)
	}
	return nil
}

// DelimiterName names a delimiter for people.
func DelimiterName(r rune) string {
	switch r {
	case ';':
		return "semicolons"
	case '\t':
		return "tabs"
	case ',':
		return "commas"
	}
	return strconv.QuoteRune(r)
}
