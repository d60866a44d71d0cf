package store

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xuri/excelize/v2"
)

// Spreadsheets: an .xlsx workbook is read into the same rows as a CSV
// (rowSink) and written with the same columns. A workbook is a zip of XML
// files, so reading one is bounded before anything is unzipped: by the
// sizes its zip directory declares (archive/zip refuses an entry that
// unzips to more than it declares) and how much they inflate, then row by row with excelize's
// streaming iterator, which never holds the sheet's cells at once.

var (
	zipMagic = []byte("PK\x03\x04")
	// oleMagic starts old .xls workbooks and password-protected .xlsx ones.
	oleMagic = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}
)

const (
	// MaxXLSXUnzipped bounds what a workbook may unzip to, all its parts
	// together. A 100,000-row register with a dozen columns unzips to
	// about 40 MB; a zip bomb declares far more and is refused unread.
	MaxXLSXUnzipped = 128 << 20
	// xlsxXMLInMemory: a worksheet or shared-strings part larger than this
	// is unzipped to a temporary file (removed after) rather than memory.
	xlsxXMLInMemory = 16 << 20
	// maxInflation bounds how many times a part of more than 1 MB may
	// grow when unzipped (Apache POI's default): a sheet compresses 8 to
	// 11 times (100,000 rows, measured); a part of empty cells thousands
	// of times, and reading it costs CPU for every byte unzipped.
	maxInflation = 100
	// maxXLSXCells bounds the cells (blank ones between filled ones
	// included) read from a sheet: 100,000 rows of 40 columns.
	maxXLSXCells = MaxImportRows * 40
)

// parseXLSX reads the first sheet of an .xlsx workbook (or the one named
// sheet) as ParseStudents reads a CSV: the first non-blank row is the
// header, blank rows are skipped, a row's Line is its row number in the
// sheet. Cells are read as the spreadsheet shows them (number formats
// applied, so a number formatted 000000 keeps its zeros; a formula's last
// calculated value).
func parseXLSX(raw []byte, sheet string) (ParsedCSV, error) {
	p := ParsedCSV{Format: FormatXLSX}
	if err := checkZipSize(raw); err != nil {
		return p, err
	}
	f, err := excelize.OpenReader(bytes.NewReader(raw), excelize.Options{
		UnzipSizeLimit: MaxXLSXUnzipped, UnzipXMLSizeLimit: xlsxXMLInMemory,
		// Cells in the short date format (Excel's default for dates)
		// read as ISO dates, not as the ambiguous mm-dd-yy.
		ShortDatePattern: "yyyy-mm-dd"})
	if err != nil {
		return p, newFileError(err, fileNotWorkbook)
	}
	defer f.Close()
	sheets := f.GetSheetList()
	switch {
	case len(sheets) == 0:
		return p, errors.New(msgNoSheets)
	case sheet == "":
		p.Sheet = sheets[0]
	default:
		for _, s := range sheets {
			if strings.EqualFold(strings.TrimSpace(s), strings.TrimSpace(sheet)) {
				p.Sheet = s
			}
		}
		if p.Sheet == "" {
			return p, fmt.Errorf(msgNoSheet, sheet, quoteList(sheets))
		}
	}
	rows, err := f.Rows(p.Sheet)
	if err != nil {
		return p, newFileError(err, fileSheetUnread, p.Sheet)
	}
	defer rows.Close()

	var (
		rs                  *rowSink
		row, cells          int
		numeric, firstNum   int // registration numbers that are plain numbers; the first one's row
		firstNumVal         string
		beyond, firstBeyond int // rows with cells right of the header; the first one
	)
	for rows.Next() {
		row++
		rec, err := rows.Columns()
		if err != nil {
			return p, newFileError(fmt.Errorf("row %d: %w", row, err), fileSheetUnread, p.Sheet)
		}
		if cells += len(rec); cells > maxXLSXCells {
			return p, fmt.Errorf(msgTooManyCells, p.Sheet, maxXLSXCells)
		}
		if blankRow(rec) {
			continue
		}
		if rs == nil {
			if rs, err = newRowSink(&p, rec); err != nil {
				return p, err
			}
			continue
		}
		if len(rec) > rs.width && !blankRow(rec[rs.width:]) {
			if beyond++; beyond == 1 {
				firstBeyond = row
			}
		}
		for len(rec) < rs.width {
			rec = append(rec, "")
		}
		if reg := strings.TrimSpace(rec[rs.pos["registration_no"]]); allDigits(reg) && reg[0] != '0' {
			if numeric++; numeric == 1 {
				firstNum, firstNumVal = row, reg
			}
		}
		if err := rs.add(row, rec); err != nil {
			return p, err
		}
	}
	if err := rows.Error(); err != nil {
		return p, newFileError(err, fileSheetUnread, p.Sheet)
	}
	if rs == nil {
		return p, fmt.Errorf(msgEmptySheet, p.Sheet)
	}
	if numeric == 1 {
		p.Notes = append(p.Notes, fmt.Sprintf(msgNumericOne, firstNumVal, firstNum))
	} else if numeric > 1 {
		p.Notes = append(p.Notes, fmt.Sprintf(msgNumericMany, numeric, firstNumVal, firstNum))
	}
	if beyond == 1 {
		p.Notes = append(p.Notes, fmt.Sprintf(msgBeyondOne, firstBeyond))
	} else if beyond > 1 {
		p.Notes = append(p.Notes, fmt.Sprintf(msgBeyondMany, beyond, firstBeyond))
	}
	return p, nil
}

// checkZipSize refuses a workbook whose parts declare more than
// MaxXLSXUnzipped together, before any is unzipped.
func checkZipSize(raw []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return newFileError(err, fileDamaged)
	}
	var total uint64
	for _, zf := range zr.File {
		total += zf.UncompressedSize64
		if total > MaxXLSXUnzipped {
			return fmt.Errorf(msgUnzipsTooLarge, MaxXLSXUnzipped>>20, zf.Name, zf.UncompressedSize64>>20)
		}
		if zf.UncompressedSize64 > 1<<20 && zf.UncompressedSize64/max(zf.CompressedSize64, 1) > maxInflation {
			return fmt.Errorf(msgInflates, zf.Name, zf.UncompressedSize64/max(zf.CompressedSize64, 1), zf.UncompressedSize64>>20)
		}
	}
	return nil
}

func blankRow(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// ---- export ----

// Export formats.
const (
	ExportCSV  = "csv"
	ExportXLSX = "xlsx"
)

// xlsxWriter writes the export as one sheet, "Students", with the text
// number format on its columns: every cell is a string (never a formula,
// so =, +, - and @ are shown, not run), and a cell typed over later in the
// spreadsheet stays text too (no formula, leading zeros kept).
type xlsxWriter struct {
	w   io.Writer
	f   *excelize.File
	sw  *excelize.StreamWriter
	row int
}

func newXLSXWriter(w io.Writer) (*xlsxWriter, error) {
	f := excelize.NewFile()
	const name = "Students"
	if err := f.SetSheetName("Sheet1", name); err != nil {
		return nil, err
	}
	text, err := f.NewStyle(&excelize.Style{NumFmt: 49}) // "@": text
	if err != nil {
		return nil, err
	}
	sw, err := f.NewStreamWriter(name)
	if err != nil {
		return nil, err
	}
	if err := sw.SetColStyle(1, len(recordFields), text); err != nil {
		return nil, err
	}
	if err := sw.SetColWidth(1, len(recordFields), 24); err != nil {
		return nil, err
	}
	return &xlsxWriter{w: w, f: f, sw: sw}, nil
}

// Write writes one row. Only a cell that starts with quotes before a
// formula character gets one more quote (as guardCell), so that
// ParseStudents, which takes one off, gives back exactly the value.
func (x *xlsxWriter) Write(rec []string) error {
	x.row++
	vals := make([]any, len(rec))
	for i, v := range rec {
		if strings.HasPrefix(v, "'") {
			v = guardCell(v)
		}
		vals[i] = v
	}
	cell, err := excelize.CoordinatesToCellName(1, x.row)
	if err != nil {
		return err
	}
	return x.sw.SetRow(cell, vals)
}

func (x *xlsxWriter) Abort() { x.f.Close() }

// Close finishes the workbook and writes it out.
func (x *xlsxWriter) Close() error {
	defer x.f.Close()
	if err := x.sw.Flush(); err != nil {
		return err
	}
	_, err := x.f.WriteTo(x.w)
	return err
}
