package app

import (
	"net/http"
	"net/url"
)

// Going back to the list where one was. Links from the admin list to a
// student's pages, and the forms on them (save, delete, delete selected),
// carry the list's search, sort and page in a "back" field, as Django's
// _changelist_filters; after the action the admin lands on that list again.
// The field is parsed like the list's own query (parseListParams), so it
// can only ever name a list page, never another address.

const backField = "back"

// backLink is the list state to return to.
type backLink struct {
	Query string // encoded list query ("q=…&sort=…&page=2"); "" for the default list
}

// backFrom reads the back field of a form or query.
func backFrom(r *http.Request) backLink {
	raw := r.FormValue(backField)
	if raw == "" {
		return backLink{}
	}
	p, err := parseListParams(&http.Request{URL: &url.URL{RawQuery: raw}}, true)
	if err != nil {
		return backLink{}
	}
	return backLink{Query: p.values(p.Page).Encode()}
}

// params are the list's parameters (backFrom made them valid).
func (b backLink) params() listParams {
	p, _ := parseListParams(&http.Request{URL: &url.URL{RawQuery: b.Query}}, true)
	return p
}

// backTo is the state of the list page being shown.
func backTo(p listParams, page int) backLink {
	return backLink{Query: p.values(page).Encode()}
}

// List is the list URL to return to.
func (b backLink) List() string {
	if b.Query == "" {
		return studentsURL
	}
	return studentsURL + "?" + b.Query
}

// Suffix is appended to links to a student's pages: "?back=…" or "".
func (b backLink) Suffix() string {
	if b.Query == "" {
		return ""
	}
	return "?" + url.Values{backField: {b.Query}}.Encode()
}
