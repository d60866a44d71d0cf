package app

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"
)

// static holds Bootstrap's minified CSS (with its licence header and
// LICENSE file) and the app's own small CSS and JS. Nothing is ever loaded
// from a CDN: the site works with no internet.
//
//go:embed static
var staticFS embed.FS

type staticFile struct {
	path  string // in staticFS, read from the binary at each request: no copy on the heap
	etag  string // strong ETag: hash of the content
	ctype string
}

// staticFiles serves /static/{file} from memory. Pages link to
// /static/NAME?v=HASH (see url): such URLs change whenever the file does
// and are cached for a year; other requests revalidate with the ETag.
type staticFiles struct {
	files map[string]*staticFile // by URL name
}

// staticNames maps URL names to files in the embedded tree.
var staticNames = map[string]string{
	"bootstrap.min.css":     "static/bootstrap/bootstrap.min.css",
	"bootstrap-LICENSE.txt": "static/bootstrap/LICENSE",
	"app.css":               "static/app.css",
	"app.js":                "static/app.js",
}

// staticTypes are the content types of the static files, by extension:
// those of the mime package, without loading the host's MIME database at
// every start (which cost an app's start about 3 % of its CPU, and whose
// answer for .txt depends on the host).
var staticTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
}

func loadStatic() (*staticFiles, error) {
	sf := &staticFiles{files: map[string]*staticFile{}}
	for name, file := range staticNames {
		sum, err := hashStatic(file)
		if err != nil {
			return nil, fmt.Errorf("load static file %s: %w", file, err)
		}
		ctype, ok := staticTypes[path.Ext(name)]
		if !ok {
			return nil, fmt.Errorf("load static file %s: no content type for its extension", file)
		}
		sf.files[name] = &staticFile{path: file, etag: hex.EncodeToString(sum[:8]), ctype: ctype}
	}
	return sf, nil
}

// hashStatic is the SHA-256 of an embedded file, read in place.
func hashStatic(file string) ([]byte, error) {
	f, err := staticFS.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// url is the versioned URL of a static file, for templates.
func (sf *staticFiles) url(name string) string {
	f, ok := sf.files[name]
	if !ok {
		panic("app: unknown static file " + name) // caught at start-up by template tests
	}
	return "/static/" + name + "?v=" + f.etag
}

func (sf *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := sf.files[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("ETag", `"`+f.etag+`"`)
	h.Set("Content-Type", f.ctype)
	if r.URL.Query().Get("v") == f.etag {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=300, must-revalidate")
	}
	body, err := staticFS.Open(f.path)
	if err != nil { // embedded at build time: cannot fail
		http.Error(w, "Server error", http.StatusInternalServerError)
		return
	}
	defer body.Close()
	http.ServeContent(w, r, "", time.Time{}, body.(io.ReadSeeker))
}

// Static serves the admin's static files (Bootstrap, app.css, app.js)
// for another server with the admin's look (the control console, issue
// 26) at prefix+"{file}" (the route must name the file {file}); url gives
// a file's versioned path there.
func Static(prefix string) (h http.Handler, url func(name string) string, err error) {
	sf, err := loadStatic()
	if err != nil {
		return nil, nil, err
	}
	return sf, func(name string) string { return prefix + strings.TrimPrefix(sf.url(name), "/static/") }, nil
}
