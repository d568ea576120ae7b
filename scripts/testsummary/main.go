// Command testsummary reads `go test -json` output on standard input and
// prints one line per package as it finishes, then the full output of
// every failed test, package and build, then a closing count line:
//
//	tests: 212 passed, 0 failed, 3 skipped
//
// When packages did not build, or failed outside any test (a panic in
// TestMain, a timeout), the closing line adds their count after the test
// counts, so a parser that reads "N passed, N failed" still works:
//
//	tests: 212 passed, 1 failed, 3 skipped, 1 package did not build
//
// It exits 1 when a test, a package or a build failed, so `make test`
// fails even when the go command's own status is lost in a pipe.
package main

import (
	"fmt"
	"os"
)

func main() {
	s := newSummary(os.Stdout)
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: read standard input: %v\n", err)
		os.Exit(1)
	}
	if !s.report() {
		os.Exit(1)
	}
}
