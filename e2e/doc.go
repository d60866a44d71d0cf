// Package e2e holds the browser tests of Campus: the real `campus dev`
// (embedded database, one app process per school, the proxy) driven by
// headless Chromium through chromedp, as a person at a school would use it.
//
// The tests need /usr/bin/chromium (Debian's chromium package; ./test.sh
// installs it when it is missing). Without it they fail, loudly; set
// CAMPUS_SKIP_BROWSER=1 to skip them on purpose. Screenshots of every page
// visited go to $CAMPUS_TEST_OUTPUT (default e2e/testdata/out). With
// CAMPUS_UPDATE_SCREENSHOTS=1, TestREADMEScreenshots rewrites the small
// PNGs in docs/screenshots/ that the README shows.
//
//	go test ./e2e/
//	CAMPUS_UPDATE_SCREENSHOTS=1 go test ./e2e/ -run README
package e2e
