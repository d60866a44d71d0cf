package store

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
	msgNotValidCSV       = "not valid CSV: %s"
	msgNumericOne        = "1 registration number is a plain number (the first: %s on row %d). " + leadingZeros
	msgNumericMany       = "%d registration numbers are plain numbers (the first: %s on row %d). " + leadingZeros
	leadingZeros         = "A spreadsheet drops leading zeros from numbers: if one should read 000123, " +
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
	msgRepeats, msgFieldCount, msgUnknownPermission, msgNoSuchGroup, msgNotValidCSV,
	msgNumericOne, msgNumericMany, msgBeyondOne, msgBeyondMany,
	msgOldXLS, msgNotXLSX, msgEmptyFile, msgTooManyRows, msgBadUTF8Line, msgNotUTF16, msgNotText, msgColumnTwice,
	msgNoSheet, msgEmptySheet, MsgSaveAsUTF8,
	msgUserObject, msgGroupObject, msgRolledBackDelete1, msgRolledBackDelete, msgRolledBackChange1, msgRolledBackChange,
	msgRolledBackImport1, msgRolledBackImport, msgRolledBackImportChanged1, msgRolledBackImportChanged,
}
