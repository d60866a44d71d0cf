package store

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The student record of schema 3 (issue 27): besides the registration
// number and names, a class, the date of birth, a gender, a guardian
// (name, phone, e-mail), a status with its date, the enrolment date and
// notes. Dates are kept as ISO text ("2014-03-09", or "" when unknown):
// they are calendar days, not instants, so no time zone can move them,
// and ISO text sorts and compares as the dates do.

// Student statuses.
const (
	StatusEnrolled  = "enrolled"
	StatusGraduated = "graduated"
	StatusLeft      = "left"
	StatusSuspended = "suspended"
)

// Statuses are the statuses a student may have, in the order forms and
// filters show them.
var Statuses = []string{StatusEnrolled, StatusGraduated, StatusLeft, StatusSuspended}

// DateLayout is how the record's dates are written.
const DateLayout = "2006-01-02"

// Limits of the schema 3 fields.
const (
	MaxClassLen  = 40   // characters of a class ("Form 2B")
	MaxGenderLen = 32   // characters of a gender
	MaxNotesLen  = 2000 // characters of the notes
	MaxAge       = 100  // years: an older date of birth is a typing error
	minPhone     = 7    // digits of a guardian's phone number, at least
	maxPhone     = 15   // and at most (E.164)
)

// recordField is one field of the record that people edit: its name (in
// documents, forms, history and spreadsheets) and how to read and write it.
type recordField struct {
	name string
	get  func(*Student) string
	set  func(*Student, string)
}

// recordFields are the student's editable fields, in the order history,
// exports and forms list them.
var recordFields = [...]recordField{
	{"registration_no", func(s *Student) string { return s.RegistrationNo }, func(s *Student, v string) { s.RegistrationNo = v }},
	{"first_name", func(s *Student) string { return s.FirstName }, func(s *Student, v string) { s.FirstName = v }},
	{"second_name", func(s *Student) string { return s.SecondName }, func(s *Student, v string) { s.SecondName = v }},
	{"class", func(s *Student) string { return s.Class }, func(s *Student, v string) { s.Class = v }},
	{"date_of_birth", func(s *Student) string { return s.DateOfBirth }, func(s *Student, v string) { s.DateOfBirth = v }},
	{"gender", func(s *Student) string { return s.Gender }, func(s *Student, v string) { s.Gender = v }},
	{"guardian_name", func(s *Student) string { return s.GuardianName }, func(s *Student, v string) { s.GuardianName = v }},
	{"guardian_phone", func(s *Student) string { return s.GuardianPhone }, func(s *Student, v string) { s.GuardianPhone = v }},
	{"guardian_email", func(s *Student) string { return s.GuardianEmail }, func(s *Student, v string) { s.GuardianEmail = v }},
	{"status", func(s *Student) string { return s.Status }, func(s *Student, v string) { s.Status = v }},
	{"status_date", func(s *Student) string { return s.StatusDate }, func(s *Student, v string) { s.StatusDate = v }},
	{"enrolled_on", func(s *Student) string { return s.EnrolledOn }, func(s *Student, v string) { s.EnrolledOn = v }},
	{"notes", func(s *Student) string { return s.Notes }, func(s *Student, v string) { s.Notes = v }},
}

// StudentFieldNames are the names of the record's fields, in order.
func StudentFieldNames() []string {
	out := make([]string, len(recordFields))
	for i, f := range recordFields {
		out[i] = f.name
	}
	return out
}

// StudentField returns the value of the named field of st ("" for an
// unknown name).
func StudentField(st Student, name string) string {
	for _, f := range recordFields {
		if f.name == name {
			return f.get(&st)
		}
	}
	return ""
}

// SetStudentField sets the named field of st (an unknown name does
// nothing).
func SetStudentField(st *Student, name, value string) {
	for _, f := range recordFields {
		if f.name == name {
			f.set(st, value)
		}
	}
}

// Student returns the record in as a Student (no ID, no times).
func (in StudentInput) Student() Student {
	return Student{RegistrationNo: in.RegistrationNo, FirstName: in.FirstName, SecondName: in.SecondName,
		Class: in.Class, DateOfBirth: in.DateOfBirth, Gender: in.Gender, GuardianName: in.GuardianName,
		GuardianPhone: in.GuardianPhone, GuardianEmail: in.GuardianEmail, Status: in.Status,
		StatusDate: in.StatusDate, EnrolledOn: in.EnrolledOn, Notes: in.Notes}
}

// Input returns st's editable fields.
func (st Student) Input() StudentInput {
	return StudentInput{RegistrationNo: st.RegistrationNo, FirstName: st.FirstName, SecondName: st.SecondName,
		Class: st.Class, DateOfBirth: st.DateOfBirth, Gender: st.Gender, GuardianName: st.GuardianName,
		GuardianPhone: st.GuardianPhone, GuardianEmail: st.GuardianEmail, Status: st.Status,
		StatusDate: st.StatusDate, EnrolledOn: st.EnrolledOn, Notes: st.Notes}
}

// withRecord returns st with the editable fields of in (ID and times kept).
func (st Student) withRecord(in StudentInput) Student {
	out := in.Student()
	out.ID, out.CreatedAt, out.UpdatedAt = st.ID, st.CreatedAt, st.UpdatedAt
	return out
}

// sameRecord reports whether a and b have the same editable fields.
func sameRecord(a, b Student) bool {
	for _, f := range recordFields {
		if f.get(&a) != f.get(&b) {
			return false
		}
	}
	return true
}

// EnrolledYear is the year of st's enrolment date, 0 when unknown.
func (st Student) EnrolledYear() int {
	if len(st.EnrolledOn) < 4 {
		return 0
	}
	y, err := strconv.Atoi(st.EnrolledOn[:4])
	if err != nil {
		return 0
	}
	return y
}

// searchExtra is what the schema 3 fields add to a student's search text:
// class, guardian name and e-mail, notes (folded, every run of spaces or
// line breaks one space) and the phone's digits, so that "0712 345 678"
// is found by 0712345678. "" when they are all empty.
func searchExtra(st *Student) string {
	var b strings.Builder
	for _, s := range [...]string{st.Class, st.GuardianName, st.GuardianEmail, st.Notes} {
		for _, w := range strings.Fields(s) {
			b.WriteByte(' ')
			b.WriteString(w)
		}
	}
	if digits := phoneDigits(st.GuardianPhone); digits != "" {
		b.WriteByte(' ')
		b.WriteString(digits)
	}
	if b.Len() == 0 {
		return ""
	}
	return Fold(b.String())
}

func phoneDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// statusCode numbers the statuses for the read model (0: none).
func statusCode(s string) uint64 {
	return uint64(slices.Index(Statuses, s) + 1)
}

func statusOf(code uint64) string {
	if code == 0 || code > uint64(len(Statuses)) {
		return ""
	}
	return Statuses[code-1]
}

// epochDay is the day dates are counted from in the read model.
var epochDay = time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)

// dateCode is an ISO date as days after epochDay plus one (0: none or not
// a date); codeDate turns it back.
func dateCode(s string) uint64 {
	t, err := time.Parse(DateLayout, s)
	if err != nil || t.Before(epochDay) {
		return 0
	}
	return uint64(t.Sub(epochDay)/(24*time.Hour)) + 1
}

func codeDate(n uint64) string {
	if n == 0 {
		return ""
	}
	return epochDay.AddDate(0, 0, int(n-1)).Format(DateLayout)
}

// normalizeRecord trims and checks the schema 3 fields of in into out
// (the names and registration number are checked by NormalizeStudent),
// as of today (a date in the school's calendar).
func normalizeRecord(in StudentInput, out *StudentInput, fe FieldErrors, today time.Time) {
	out.Class = strings.Join(strings.Fields(in.Class), " ")
	out.Gender = strings.TrimSpace(in.Gender)
	out.GuardianName = strings.TrimSpace(in.GuardianName)
	out.GuardianPhone = strings.TrimSpace(in.GuardianPhone)
	out.GuardianEmail = strings.TrimSpace(in.GuardianEmail)
	out.Status = strings.ToLower(strings.TrimSpace(in.Status))
	out.Notes = strings.TrimSpace(strings.ReplaceAll(in.Notes, "\r\n", "\n"))
	if msg := checkText(out.Class, MaxClassLen); msg != "" {
		fe["class"] = msg
	}
	if msg := checkText(out.Gender, MaxGenderLen); msg != "" {
		fe["gender"] = msg
	}
	if msg := checkText(out.GuardianName, MaxNameLen); msg != "" {
		fe["guardian_name"] = msg
	}
	if msg := checkPhone(out.GuardianPhone); msg != "" {
		fe["guardian_phone"] = msg
	}
	if msg := checkEmail(out.GuardianEmail); msg != "" {
		fe["guardian_email"] = msg
	}
	if out.Status != "" && !slices.Contains(Statuses, out.Status) { // "": enrolled (newStudentDoc)
		fe["status"] = "must be one of " + strings.Join(Statuses, ", ")
	}
	if msg := checkNotes(out.Notes); msg != "" {
		fe["notes"] = msg
	}
	today = time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	dob, msg := checkDate(in.DateOfBirth, today)
	out.DateOfBirth = dateText(dob, in.DateOfBirth)
	switch {
	case msg != "":
		fe["date_of_birth"] = msg
	case !dob.IsZero() && dob.After(today.AddDate(-1, 0, 0)):
		fe["date_of_birth"] = "must be at least a year ago (a student is not a newborn)"
	case !dob.IsZero() && dob.Before(today.AddDate(-MaxAge, 0, 0)):
		fe["date_of_birth"] = fmt.Sprintf(msgWithinYears, MaxAge)
	}
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{{"enrolled_on", in.EnrolledOn, &out.EnrolledOn}, {"status_date", in.StatusDate, &out.StatusDate}} {
		t, msg := checkDate(f.in, today)
		*f.out = dateText(t, f.in)
		switch {
		case msg != "":
			fe[f.name] = msg
		case !t.IsZero() && !dob.IsZero() && t.Before(dob):
			fe[f.name] = "must not be before the date of birth"
		}
	}
}

// dateText is t as ISO text, or the input trimmed when it is no date.
func dateText(t time.Time, in string) string {
	if t.IsZero() {
		return strings.TrimSpace(in)
	}
	return t.Format(DateLayout)
}

// checkDate parses an optional ISO date that must not be after today.
func checkDate(s string, today time.Time) (time.Time, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, ""
	}
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Sprintf(msgNotADate, s)
	}
	if t.After(today) {
		return time.Time{}, fmt.Sprintf(msgInFuture, s)
	}
	if t.Before(epochDay) {
		return time.Time{}, fmt.Sprintf(msgTooLongAgo, s)
	}
	return t, ""
}

// checkText checks an optional one-line text of at most max characters.
func checkText(s string, max int) string {
	switch {
	case s == "":
		return ""
	case !utf8.ValidString(s):
		return "is not valid UTF-8 text"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf(msgAtMostChars, max)
	case strings.ContainsFunc(s, unicode.IsControl):
		return "must not contain control characters such as line breaks or tabs"
	}
	return ""
}

func checkNotes(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8 text"
	case utf8.RuneCountInString(s) > MaxNotesLen:
		return fmt.Sprintf(msgAtMostChars, MaxNotesLen)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }):
		return "must not contain control characters"
	}
	return ""
}

// checkPhone accepts "" or a phone number: digits with spaces, dots,
// dashes and brackets, an optional leading +, 7 to 15 digits.
func checkPhone(s string) string {
	if s == "" {
		return ""
	}
	const msg = "must be a phone number: 7 to 15 digits, optionally with a leading + and spaces, dashes, dots or brackets (e.g. +254 712 345 678)"
	for i, r := range s {
		switch {
		case '0' <= r && r <= '9', r == ' ', r == '-', r == '.', r == '(', r == ')':
		case r == '+' && i == 0:
		default:
			return msg
		}
	}
	if n := len(phoneDigits(s)); n < minPhone || n > maxPhone {
		return msg
	}
	return ""
}

// filterSpec is the query of o's filters, for MongoDB's indexes.
func filterSpec(o ListOptions) bson.D {
	var f bson.D
	if o.Class != "" {
		f = append(f, bson.E{Key: fieldClassKey, Value: ClassKey(o.Class)})
	}
	if o.Status != "" {
		f = append(f, bson.E{Key: "status", Value: o.Status})
	}
	if o.EnrolledYear != 0 {
		from := fmt.Sprintf("%04d-01-01", o.EnrolledYear)
		to := fmt.Sprintf("%04d-01-01", o.EnrolledYear+1)
		f = append(f, bson.E{Key: "enrolled_on", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: to}}})
	}
	return f
}

// filterIndexes serve the list's filters on MongoDB (with _id, so that a
// filtered page sorted by ID walks the index). A class is found by its
// class_key (ClassKey), so "form 2b" finds "Form 2B".
func filterIndexes() []index {
	var out []index
	for _, f := range []string{fieldClassKey, "status", "enrolled_on"} {
		out = append(out, index{collection: colStudents, model: mongo.IndexModel{
			Keys:    bson.D{{Key: f, Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName(f + "_id"),
		}, onlyIndexing: true})
	}
	return out
}

// StudentFacets counts the students by class, status and enrolment year
// (the list's filters): from the read model on FerretDB, by an
// aggregation over the indexed fields on MongoDB.
func (s *Store) StudentFacets(ctx context.Context) (Facets, error) {
	return s.studentFacets(ctx, ListOptions{})
}

// studentFacets counts the students of o's search by class, status and
// enrolment year, each narrowed by o's other filters (Django 5's facets).
func (s *Store) studentFacets(ctx context.Context, o ListOptions) (Facets, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return Facets{}, fmt.Errorf("count students by class and status: %w", err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		return s.rm.snap.facets(o), nil
	}
	narrow, err := s.databaseFacets(ctx, o)
	if err != nil || (len(searchWords(o.Query)) == 0 && !o.Filtered()) {
		return withZeros(narrow, narrow), err
	}
	school, err := s.databaseFacets(ctx, ListOptions{})
	return withZeros(narrow, school), err
}

// databaseFacets is studentFacets on the database, without the
// zero-count choices.
func (s *Store) databaseFacets(ctx context.Context, o ListOptions) (Facets, error) {
	v, err := s.opsView(ctx)
	if err != nil {
		return Facets{}, fmt.Errorf("count students by class and status: %w", err)
	}
	var out Facets
	noClass, noStatus, noYear := o, o, o
	noClass.Class, noStatus.Status, noYear.EnrolledYear = "", "", 0
	for _, g := range []struct {
		key  any
		into *[]Facet
		o    ListOptions // the other filters
	}{
		{"$class", &out.Classes, noClass},
		{"$status", &out.Statuses, noStatus},
		{"$enrolled_on", &out.EnrolledYears, noYear}, // dates: made years below (FerretDB has no $substr)
	} {
		match := searchFilter(g.o.Query)
		if g.o.NamesOnly {
			match = namesFilter(g.o.Query)
		}
		cur, err := s.col(colStudents).Aggregate(ctx, mongo.Pipeline{
			{{Key: "$match", Value: v.studentFilter(append(match, filterSpec(g.o)...))}},
			{{Key: "$group", Value: bson.D{{Key: "_id", Value: g.key}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		})
		if err != nil {
			return Facets{}, timeoutError("count students by class and status", err)
		}
		var rows []struct {
			ID any   `bson:"_id"`
			N  int64 `bson:"n"`
		}
		if err := cur.All(ctx, &rows); err != nil {
			return Facets{}, timeoutError("count students by class and status", err)
		}
		counts := map[string]int64{}
		for _, r := range rows {
			val, _ := r.ID.(string)
			counts[val] += r.N
		}
		if g.into == &out.Classes {
			names := slices.Collect(maps.Keys(counts))
			counts = classFacets(len(names), func(i int) (string, string, int64) {
				return names[i], ClassKey(names[i]), counts[names[i]]
			})
		}
		*g.into = facetList(counts)
	}
	years := map[string]int64{}
	for _, f := range out.EnrolledYears {
		years[f.Value[:min(4, len(f.Value))]] += f.Count
	}
	out.EnrolledYears = facetList(years)
	out.Statuses = statusFacets(out.Statuses)
	return out, nil
}

// facetList sorts counts by value.
func facetList(counts map[string]int64) []Facet {
	out := make([]Facet, 0, len(counts))
	for v, n := range counts {
		out = append(out, Facet{Value: v, Count: n})
	}
	slices.SortFunc(out, func(a, b Facet) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// statusFacets orders status facets as Statuses ("" counts as enrolled).
func statusFacets(in []Facet) []Facet {
	counts := map[string]int64{}
	for _, f := range in {
		v := f.Value
		if v == "" {
			v = StatusEnrolled
		}
		counts[v] += f.Count
	}
	var out []Facet
	for _, st := range Statuses {
		if counts[st] > 0 {
			out = append(out, Facet{Value: st, Count: counts[st]})
		}
	}
	return out
}

// spreadsheetDateLayouts are the forms of a date read from a file besides
// ISO: day before month, as in most of the world (a US file's 03/09/2014
// is read as 3 September).
var spreadsheetDateLayouts = []string{
	DateLayout, "2006/01/02", "2006/1/2", "2006-1-2", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04",
	"02/01/2006", "2/1/2006", "02.01.2006", "2.1.2006", "02-01-2006", "2-1-2006",
	"2 January 2006", "2 Jan 2006", "January 2, 2006", "Jan 2, 2006", "2-Jan-2006", "02-Jan-06",
}

// excelEpoch is day 0 of Excel's serial dates (1900 system, after its
// phantom 29 February 1900).
var excelEpoch = time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)

// spreadsheetDate turns a date cell into ISO text: any of
// spreadsheetDateLayouts, or (serial, for .xlsx) a number of days as Excel
// stores dates. Anything else is returned trimmed, for validation to
// refuse with its message.
func spreadsheetDate(s string, serial bool) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	for _, l := range spreadsheetDateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.Format(DateLayout)
		}
	}
	if serial {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 1 && f < 2958466 {
			return excelEpoch.AddDate(0, 0, int(f)).Format(DateLayout)
		}
	}
	return s
}

// namesFilter is searchFilter within the registration number and names:
// every word in one of their keys (a word holds no space, so it cannot
// span two of them).
func namesFilter(q string) bson.D {
	words := searchWords(q)
	if len(words) == 0 {
		return bson.D{}
	}
	all := make(bson.A, len(words))
	for i, w := range words {
		re := bson.Regex{Pattern: regexp.QuoteMeta(w)}
		all[i] = d("$or", bson.A{d(fieldRegNoKey, re), d(fieldFirstNameKey, re), d(fieldSecondNameKey, re)})
	}
	return d("$and", all)
}
