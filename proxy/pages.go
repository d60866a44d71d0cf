package proxy

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// page is an answer the proxy gives itself. Message may contain {school},
// replaced by the tenant's display name (escaped when rendered); pages for
// unknown hosts never name a tenant and never echo the Host header.
type page struct {
	status     int
	error      string // short English text for the JSON "error" field
	title      string
	message    string
	retryAfter int // seconds; 0: no Retry-After header
}

var (
	pageBadHost = &page{status: http.StatusBadRequest, error: "bad request",
		title:   "This address doesn't look right",
		message: "Please check the link you followed or the address you typed, and try again."}
	pageUnknownSchool = &page{status: http.StatusNotFound, error: "unknown school",
		title:   "School not found",
		message: "There is no school at this address. Please check the link, or ask your school for the right address."}
	pageNotFound = &page{status: http.StatusNotFound, error: "not found",
		title:   "Page not found",
		message: "The page you asked for doesn't exist at {school}."}
	pageMaintenance = &page{status: http.StatusServiceUnavailable, error: "school under maintenance",
		title:      "Down for maintenance",
		message:    "{school} is down for maintenance. Your records are safe; please try again a little later.",
		retryAfter: 300}
	pageUnavailable = &page{status: http.StatusServiceUnavailable, error: "school unavailable",
		title:      "Just a moment",
		message:    "{school} is starting up or very busy right now. Please try again in a few seconds.",
		retryAfter: 5}
	pageStarting = &page{status: http.StatusServiceUnavailable, error: "starting",
		title:      "Just a moment",
		message:    "This service is starting up. Please try again in a few seconds.",
		retryAfter: 5}
	pageTooLarge = &page{status: http.StatusRequestEntityTooLarge, error: "request too large",
		title:   "That's too large",
		message: "What you sent is larger than {school} accepts. Please try a smaller file."}
	pageBadBody = &page{status: http.StatusBadRequest, error: "malformed request body",
		title:   "Something was wrong with what was sent",
		message: "What your browser sent to {school} arrived broken. Please try again."}
	pageTooManyResets = &page{status: http.StatusTooManyRequests, error: "too many cancelled requests",
		title:   "Too many requests",
		message: "This connection cancelled too many requests. Please try again."}
	pageBadGateway = &page{status: http.StatusBadGateway, error: "bad gateway",
		title:   "Something went wrong",
		message: "We couldn't get an answer from {school} just now. Please try again in a moment."}
	pageTimeout = &page{status: http.StatusGatewayTimeout, error: "gateway timeout",
		title:   "This is taking too long",
		message: "{school} took too long to answer. Please try again in a moment."}
)

// reply answers the request with pg, as HTML or JSON (when the client
// prefers it). rt names the school for pages that mention it; nil for
// unknown hosts.
func (p *Proxy) reply(ex *exchange, pg *page, rt *route) {
	lang := pageLang(ex.r)
	school := pageT(lang, "this school")
	if rt != nil && rt.displayName != "" {
		school = rt.displayName
	}
	msg := strings.ReplaceAll(pageT(lang, pg.message), "{school}", school)
	if strings.HasPrefix(pg.message, "{school}") && (rt == nil || rt.displayName == "") {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}

	var body bytes.Buffer
	h := ex.w.Header()
	if wantsJSON(ex.r.Header.Get("Accept")) {
		h.Set("Content-Type", "application/json")
		_ = json.NewEncoder(&body).Encode(struct {
			Error  string `json:"error"`
			Status int    `json:"status"`
		}{pg.error, pg.status})
	} else {
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Language", lang)
		h.Add("Vary", "Accept-Language")
		if err := pageTemplate.Execute(&body, pageData{
			Lang: lang, Status: pg.status, Title: pageT(lang, pg.title), Message: msg, RequestID: ex.id(),
			Retry: rt != nil && pg.status >= 500, TryAgain: pageT(lang, "Try again"), Reference: pageT(lang, "Reference:"),
		}); err != nil {
			p.log.Error("render error page", "status", pg.status, "err", err)
		}
	}
	h.Set("Content-Length", strconv.Itoa(body.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(HeaderRequestID, ex.id())
	if pg.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(pg.retryAfter))
	}
	ex.w.WriteHeader(pg.status)
	if ex.r.Method != http.MethodHead {
		_, _ = ex.w.Write(body.Bytes())
	}
}

// wantsJSON reports whether an Accept header prefers application/json to
// text/html (by q-value, then by how specifically each is named). Browsers
// and clients without an Accept header get HTML.
func wantsJSON(accept string) bool {
	if accept == "" {
		return false
	}
	var jsonQ, htmlQ float64
	var jsonSpec, htmlSpec int
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, params, _ := strings.Cut(part, ";")
		mediaType = strings.ToLower(strings.TrimSpace(mediaType))
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(param, "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if s := mediaMatch(mediaType, "application/json"); s > jsonSpec {
			jsonSpec, jsonQ = s, q
		}
		if s := mediaMatch(mediaType, "text/html"); s > htmlSpec {
			htmlSpec, htmlQ = s, q
		}
	}
	if jsonSpec == 0 || jsonQ <= 0 {
		return false
	}
	return jsonQ > htmlQ || jsonQ == htmlQ && jsonSpec > htmlSpec
}

// mediaMatch says how specifically a media range names target: 3 exactly,
// 2 as type/*, 1 as */*, 0 not at all.
func mediaMatch(mediaRange, target string) int {
	switch {
	case mediaRange == target:
		return 3
	case mediaRange == "*/*":
		return 1
	case strings.HasSuffix(mediaRange, "/*") && strings.HasPrefix(target, mediaRange[:len(mediaRange)-1]):
		return 2
	}
	return 0
}

type pageData struct {
	Lang      string // "en" or "fr" (pagelang.go)
	Status    int
	Title     string
	Message   string
	RequestID string
	Retry     bool // offer to try again (the school is there, but not answering)
	TryAgain  string
	Reference string
}

// pageTemplate draws the proxy's own pages to look like the app's error
// pages (app/templates/error.html): Bootstrap 5's type, colours and panel,
// copied into inline CSS, since the proxy serves no files and a page for an
// unknown host must not load anything from anywhere.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
*,*::before,*::after{box-sizing:border-box}
body{margin:0;min-height:100vh;padding:10vh 1rem 2rem;background:#fff;color:#212529;
 font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Noto Sans","Liberation Sans",Arial,sans-serif;
 font-size:1rem;line-height:1.5;-webkit-text-size-adjust:100%}
main{max-width:34rem;margin:0 auto;padding:3rem 1.5rem;text-align:center;background:#f8f9fa;
 border:1px solid #dee2e6;border-radius:.5rem}
.code{display:inline-block;margin:0 0 .5rem;padding:.35em .65em;border-radius:50rem;background:#6c757d;color:#fff;
 font-size:1rem;font-weight:700;line-height:1;letter-spacing:.06em}
h1{margin:.5rem 0 .75rem;font-size:1.75rem;font-weight:500;line-height:1.2}
p{margin:0}
a{color:#0a58ca}
a:hover{color:#084298}
a:focus-visible{outline:3px solid #0a58ca;outline-offset:2px}
.again{margin-top:1rem}
.ref{margin-top:1.5rem;font-size:.875rem;color:#595c5f;overflow-wrap:anywhere}
@media (min-width:576px){main{padding:3rem}}
</style>
</head>
<body>
<main>
<p class="code">{{.Status}}</p>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- if .Retry}}
<p class="again"><a href="">{{.TryAgain}}</a></p>
{{- end}}
<p class="ref">{{.Reference}} {{.RequestID}}</p>
</main>
</body>
</html>
`))
