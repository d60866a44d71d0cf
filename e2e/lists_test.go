package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/xuri/excelize/v2"
)

// TestClassListFilterPrintPhone (issue 27, lists): a class list imported
// from an .xlsx file with extra columns is filtered by class in the
// sidebar, printed to a PDF through Chromium (one page per class, the
// class headings in it) and shown on a 375 px phone without sideways
// scrolling and without names broken inside a word.
func TestClassListFilterPrintPhone(t *testing.T) {
	sys := system(t)
	kericho := school{"kericho", sys.createTenant(t, "kericho", "Kericho Girls")}
	b := newTab(t, sys, desktop)
	b.forbidden = []string{"NRB/", "ACC/", "Nairobi School"}
	b.login(sys, kericho)

	f := excelize.NewFile()
	defer f.Close()
	rows := [][]any{{"Adm No", "First name", "Surname", "Class", "Date of birth", "House"}}
	for _, r := range [][]string{
		{"KSM/001", "Achieng", "Odhiambo", "1A"}, {"KSM/002", "Akinyi", "Onyango-Nyambura", "1A"},
		{"KSM/003", "Atieno", "Okoth", "1A"}, {"KSM/004", "Awino", "Otieno", "1B"},
		{"KSM/005", "Adhiambo", "Ouma", "1B"}, {"KSM/006", "Anyango", "Wanjiku-Kamau", "2A"},
		{"KSM/007", "Apiyo", "Ochieng", "2A"},
	} {
		rows = append(rows, []any{r[0], r[1], r[2], r[3], "2011-05-06", "Lake"})
	}
	for i, row := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Sheet1", cell, &row); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "classes.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	b.upload(kericho, sys, file, "add", http.StatusOK, "lists-preview")
	if got := b.confirmImport("lists-imported"); got != "Successfully imported 7 students." {
		t.Fatalf("after importing: %q", got)
	}

	// Filter by class in the sidebar.
	b.open(kericho.url(sys, "/admin/students/"), http.StatusOK, "lists-all")
	b.see("By class", "1A (3)", "1B (2)", "2A (2)")
	b.see("Graduated (0)", "Suspended (0)") // every status is a choice, as Django's
	b.press(`#filters .filter-class a[href="/admin/students/?class=1B"]`, http.StatusOK, "lists-class-1b")
	b.see("2 matching the filters", "Awino", "Adhiambo")
	b.dontSee("Achieng", "Apiyo")
	if got := b.count("#changelist tbody tr"); got != 2 {
		t.Errorf("class 1B shows %d rows, want 2", got)
	}

	// Print: the whole list (one page per class), then the filtered one.
	for _, tc := range []struct {
		path    string
		classes []string
	}{
		{"/admin/students/print/", []string{"Class 1A", "Class 1B", "Class 2A"}},
		{"/admin/students/print/?class=1B", []string{"Class 1B"}},
	} {
		b.open(kericho.url(sys, tc.path), http.StatusOK, "lists-print")
		pdf := value(b, "print "+tc.path, func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
			res, err := cdp.Call(ctx, tg, page.PrintToPDF, page.PrintToPDFParams{
				PaperWidth: 8.27, PaperHeight: 11.69,
				GenerateTaggedPDF: ptr(true), GenerateDocumentOutline: ptr(true),
			})
			return res.Data, err
		})
		name := "print-all.pdf"
		if strings.Contains(tc.path, "class=") {
			name = "print-1b.pdf"
		}
		_ = os.WriteFile(filepath.Join(outputDir(), name), pdf, 0o644) // to look at
		if got := pdfPages(pdf); got != len(tc.classes) {
			t.Errorf("%s: %d PDF pages, want %d (one per class)", tc.path, got, len(tc.classes))
		}
		for _, c := range tc.classes {
			if !pdfHasText(pdf, c) {
				t.Errorf("%s: the PDF has no %q", tc.path, c)
			}
		}
		if strings.Contains(tc.path, "class=") && pdfHasText(pdf, "Class 1A") {
			t.Errorf("%s: the PDF holds another class", tc.path)
		}
	}

	// A 375 px phone: no sideways scrolling, no name broken inside a word.
	ph := newTab(t, sys, phone)
	ph.step("phone", emulatePhone())
	ph.login(sys, kericho)
	for _, path := range []string{"/admin/students/", "/admin/students/?class=2A&per_page=25"} {
		ph.open(kericho.url(sys, path), http.StatusOK, "lists-phone")
		ph.noSideways(path)
		if broken := value(ph, "words on one line", chromedp.Evaluate[[]string](`(() => {
			const out = [];
			for (const cell of document.querySelectorAll("#changelist tbody td, #changelist tbody th")) {
				const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
				for (let n = walker.nextNode(); n; n = walker.nextNode()) {
					const re = /\S+/g; let m;
					while ((m = re.exec(n.data))) {
						const r = document.createRange();
						r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
						if (r.getClientRects().length > 1) out.push(m[0]);
					}
				}
			}
			return out;
		})()`)); len(broken) > 0 {
			t.Errorf("%s at 375 px: words broken across lines: %q", path, broken)
		}
		ph.inView(`#filters`)
	}
}

func ptr[T any](v T) *T { return &v }

// pdfPages counts the page objects of a PDF (Chromium writes them
// uncompressed).
func pdfPages(pdf []byte) int {
	return len(regexp.MustCompile(`/Type\s*/Page[^s]`).FindAll(pdf, -1))
}

// pdfHasText reports whether the PDF names s in a string: the document
// outline Chromium makes from the headings holds their text, as a
// literal or as UTF-16 with a byte order mark.
func pdfHasText(pdf []byte, s string) bool {
	if bytes.Contains(pdf, []byte("("+s+")")) {
		return true
	}
	var hex strings.Builder
	hex.WriteString("<FEFF")
	for _, u := range utf16.Encode([]rune(s)) {
		hex.WriteString(hexWord(u))
	}
	hex.WriteString(">")
	return bytes.Contains(bytes.ToUpper(pdf), []byte(hex.String()))
}

func hexWord(u uint16) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[u>>12], digits[u>>8&15], digits[u>>4&15], digits[u&15]})
}
