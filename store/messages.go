package store

import (
	"errors"
	"fmt"
	"strings"
)

// Messages built with values. The store words its messages in English
// (the CLI prints them as they are); those that carry a value (a date, a
// registration number, a count) are made from these Printf formats, and
// ValueFormats lists them so that the app can find a message's format and
// values again and word it in a page's language (its catalogues are keyed
// by these formats). A message made with a format missing from the list
// stays English on every page: the app's tests check the list against the
// store's code.
const (
	msgNotADate          = "%q is not a date: write it as YYYY-MM-DD (e.g. 2014-03-09)"
	msgInFuture          = "%s is in the future"
	msgTooLongAgo        = "%s is too long ago"
	msgWithinYears       = "must be within the last %d years"
	msgAtMostChars       = "must be at most %d characters"
	msgExists            = "%q already exists"
	msgExistsAs          = "%q already exists as %q (registration numbers are compared without case)"
	msgRepeats           = "%q repeats line %d (registration numbers are compared without case)"
	msgFieldCount        = "expected %d fields (as the header has), found %d"
	msgUnknownPermission = "has an unknown permission %q"
	msgNoSuchGroup       = "names no group of this school (%q)"
	// A CSV syntax error (csvSyntax), in our words rather than encoding/csv's.
	msgCSVBareQuote = `not valid CSV: a quote (") in the middle of a cell (line %d, character %d); ` + quoteHelp
	msgCSVQuote     = `not valid CSV: a cell that starts with a quote on line %d has a quote missing or one too many ` +
		`(line %d, character %d); ` + quoteHelp
	msgCSVSyntax = "not valid CSV (line %d, character %d)"
	quoteHelp    = `a cell with a quote in it must start and end with a quote, and a quote inside it is written twice ("")`
	// The header errors list the columns as a file must name them.
	msgHeaderNone = "the first row must be the header naming the columns %s in any order (" + headerNames +
		"); it names none of them"
	msgHeaderMissing      = "header has no %q column; expected %s in any order (" + headerNames + ")"
	msgHeaderMissingOther = "header has no %q column (columns not understood: %s); expected %s in any order (" +
		headerNames + ")"
	headerNames = "other names accepted: Registration No, Reg No, Admission No, First name, Given name, " +
		"Second name, Surname, Last name; optional: Class (Form, Grade), Date of birth (DOB), Gender, " +
		"Guardian (Parent), Phone, Email, Status, Status date, Enrolled (Enrolment date), Notes; other columns are ignored"
	// Rare workbook errors. The library's own words (%v: in parentheses
	// for the CLI) are left out of a page (PageMessage, pageFormat).
	fileNotWorkbook = "the file is not a workbook that can be read%v; open it in the spreadsheet, " +
		`save it as "Excel Workbook (.xlsx)" or "CSV UTF-8" and upload that`
	fileDamaged     = "the file looks like an .xlsx workbook but is damaged%v; save it again from the spreadsheet"
	msgNoSheets     = "the workbook has no sheets"
	fileSheetUnread = "sheet %q could not be read%v; open it in the spreadsheet, " +
		`save it as "Excel Workbook (.xlsx)" or "CSV UTF-8" and upload that`
	msgTooManyCells = "sheet %q has more than %d cells (counting blank ones between filled ones); " +
		"copy the student columns to a new workbook and upload that"
	msgUnzipsTooLarge = "the workbook unzips to more than %d MB (%s alone declares %d MB); " +
		"copy the student columns to a new workbook, or save them as CSV, and upload that"
	msgInflates = "the workbook's part %s unzips to %d times its size (%d MB), which no spreadsheet does; " +
		"copy the student columns to a new workbook, or save them as CSV, and upload that"
	msgNumericOne  = "1 registration number is a plain number (the first: %s on row %d). " + leadingZeros
	msgNumericMany = "%d registration numbers are plain numbers (the first: %s on row %d). " + leadingZeros
	leadingZeros   = "A spreadsheet drops leading zeros from numbers: if one should read 000123, " +
		"format the column as Text, type the numbers again and upload the file again."
	// Why a file could not be read at all.
	msgOldXLS = "the file is an old Excel workbook (.xls), or one with a password; save it " +
		`without a password as "Excel Workbook (.xlsx)" or "CSV UTF-8" and upload that`
	msgNotXLSX = "%s is not an Excel workbook (.xlsx) inside; save it from the spreadsheet as " +
		`"Excel Workbook (.xlsx)" or "CSV UTF-8" and upload that`
	msgEmptyFile   = "the file is empty; the first row must be the header registration_no,first_name,second_name"
	msgTooManyRows = "the file has more than %d rows; split it into smaller files"
	msgBadUTF8Line = "the file starts as UTF-8 text (with a byte order mark) but line %d is not UTF-8. " + MsgSaveAsUTF8
	msgNotUTF16    = "the file says it is UTF-16 text but is not. " + MsgSaveAsUTF8
	msgNotText     = "the file is not UTF-8 text and could not be read as Windows-1252 either. " + MsgSaveAsUTF8
	msgColumnTwice = "header names column %q twice"
	msgNoSheet     = "the workbook has no sheet %q; its sheets are %s"
	msgEmptySheet  = "sheet %q is empty; its first row must be the header registration_no, first_name, second_name"
	msgUserObject  = "user %s"  // a history entry's object
	msgGroupObject = "group %s" // a history entry's object
	// The object of an interrupted operation's roll-back entry (describe).
	msgRolledBackDelete1        = "bulk delete of 1 student (interrupted; nothing deleted)"
	msgRolledBackDelete         = "bulk delete of %d students (interrupted; nothing deleted)"
	msgRolledBackChange1        = "bulk change of 1 student (interrupted; nothing changed)"
	msgRolledBackChange         = "bulk change of %d students (interrupted; nothing changed)"
	msgRolledBackImport1        = "import of 1 student new (interrupted; nothing imported)"
	msgRolledBackImport         = "import of %d students new (interrupted; nothing imported)"
	msgRolledBackImportChanged1 = "import of 1 student new, %d changed (interrupted; nothing imported)"
	msgRolledBackImportChanged  = "import of %d students new, %d changed (interrupted; nothing imported)"
	msgBeyondOne                = "1 row has cells to the right of the last column with a header (the first: row %d); they were ignored."
	msgBeyondMany               = "%d rows have cells to the right of the last column with a header (the first: row %d); they were ignored."
)

// ValueFormats are the formats of the store's messages with values (see
// above): field errors, import row errors (after "column: "), import
// notes, why a file could not be read, and the objects of history
// entries other than a student.
var ValueFormats = []string{
	msgNotADate, msgInFuture, msgTooLongAgo, msgWithinYears, msgAtMostChars, msgExists, msgExistsAs,
	msgRepeats, msgFieldCount, msgUnknownPermission, msgNoSuchGroup,
	msgNumericOne, msgNumericMany, msgBeyondOne, msgBeyondMany,
	msgOldXLS, msgNotXLSX, msgEmptyFile, msgTooManyRows, msgBadUTF8Line, msgNotUTF16, msgNotText, msgColumnTwice,
	msgNoSheet, msgEmptySheet, MsgSaveAsUTF8,
	msgCSVBareQuote, msgCSVQuote, msgCSVSyntax, msgHeaderNone, msgHeaderMissing, msgHeaderMissingOther,
	pageFormat(fileNotWorkbook), pageFormat(fileDamaged), msgNoSheets, pageFormat(fileSheetUnread), msgTooManyCells, msgUnzipsTooLarge, msgInflates,
	msgUserObject, msgGroupObject, msgRolledBackDelete1, msgRolledBackDelete, msgRolledBackChange1, msgRolledBackChange,
	msgRolledBackImport1, msgRolledBackImport, msgRolledBackImportChanged1, msgRolledBackImportChanged,
}

// fileError is why a file could not be read, made from one of the
// formats above whose %v stands for the library's own words: Error (the
// CLI's message) gives them in parentheses, PageMessage (a page's) leaves
// them out, so a page in another language holds no English.
type fileError struct {
	format string
	args   []any
	cause  error
}

func newFileError(cause error, format string, args ...any) *fileError {
	return &fileError{format: format, args: args, cause: cause}
}

func (e *fileError) Error() string {
	return fmt.Sprintf(strings.Replace(e.format, "%v", " ("+strings.ReplaceAll(e.cause.Error(), "%", "%%")+")", 1), e.args...)
}

// PageMessage is the message made from pageFormat(format).
func (e *fileError) PageMessage() string { return fmt.Sprintf(pageFormat(e.format), e.args...) }

func (e *fileError) Unwrap() error { return e.cause }

// pageFormat is a fileError's format without the library's words.
func pageFormat(format string) string { return strings.Replace(format, "%v", "", 1) }

// PageMessage is an error's message for a page: without the words of a
// library it carries, when it is a fileError.
func PageMessage(err error) string {
	var fe *fileError
	if errors.As(err, &fe) {
		return fe.PageMessage()
	}
	return err.Error()
}
