package systemtest

// TB is the part of testing.TB the *ForTest helpers use. It is declared
// here so that this package does not import testing (see the package doc).
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}
