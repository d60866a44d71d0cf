package i18n

import (
	"golang.org/x/text/language"
)

// matchers[school] prefers the school's language: a visitor whose
// Accept-Language names none of the supported ones gets it.
var matchers = func() map[string]language.Matcher {
	m := map[string]language.Matcher{}
	for _, first := range Languages {
		tags := []language.Tag{first.tag}
		for _, l := range Languages {
			if l.Code != first.Code {
				tags = append(tags, l.tag)
			}
		}
		m[first.Code] = language.NewMatcher(tags)
	}
	return m
}()

// Choose is the language of a page: the school's (an unknown or empty
// one counts as Default), or, when the school lets visitors choose, the
// supported language their Accept-Language header prefers.
func Choose(school string, visitorMayChoose bool, acceptLanguage string) string {
	if !Supported(school) {
		school = Default
	}
	if !visitorMayChoose || acceptLanguage == "" {
		return school
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return school
	}
	_, index, conf := matchers[school].Match(tags...)
	if conf == language.No {
		return school
	}
	return orderFor(school)[index]
}

// orderFor is the order of the codes in matchers[school].
func orderFor(school string) []string {
	codes := []string{school}
	for _, l := range Languages {
		if l.Code != school {
			codes = append(codes, l.Code)
		}
	}
	return codes
}
