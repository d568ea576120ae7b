// Command testsummary reads `go test -json` output on standard input and
// prints one line per package as it finishes, then the full output of
// every failed test and package, then a closing count line:
//
//	tests: 212 passed, 0 failed, 3 skipped
//
// It exits 1 when a test, a package or a build failed, so `make test`
// fails even when the go command's own status is lost in a pipe.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

type summary struct {
	out io.Writer

	passed, failed, skipped int

	// output holds the lines of each test ("pkg\x00Test") and of each
	// package ("pkg\x00"), printed only when that test or package fails.
	output map[string]*strings.Builder
	// buildOutput holds compiler output per import path.
	buildOutput map[string]*strings.Builder

	failedTests    []string
	failedPackages []string
	failedBuilds   []string
	otherLines     []string
}

func main() {
	s := &summary{out: os.Stdout, output: map[string]*strings.Builder{}, buildOutput: map[string]*strings.Builder{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: read standard input: %v\n", err)
		os.Exit(1)
	}
	if !s.report() {
		os.Exit(1)
	}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			// The go command prints set-up errors (such as a pattern that
			// matches no package) as plain text.
			fmt.Fprintln(s.out, string(line))
			s.otherLines = append(s.otherLines, string(line))
			continue
		}
		s.handle(ev)
	}
	return sc.Err()
}

func (s *summary) buffer(m map[string]*strings.Builder, key string) *strings.Builder {
	b := m[key]
	if b == nil {
		b = &strings.Builder{}
		m[key] = b
	}
	return b
}

func (s *summary) handle(ev event) {
	key := ev.Package + "\x00" + ev.Test
	switch ev.Action {
	case "build-output":
		s.buffer(s.buildOutput, ev.ImportPath).WriteString(ev.Output)
	case "build-fail":
		s.failedBuilds = append(s.failedBuilds, ev.ImportPath)
	case "output":
		s.buffer(s.output, key).WriteString(ev.Output)
	case "pass", "fail", "skip":
		if ev.Test != "" {
			s.finishTest(ev, key)
			return
		}
		s.finishPackage(ev, key)
	}
}

func (s *summary) finishTest(ev event, key string) {
	switch ev.Action {
	case "pass":
		s.passed++
		delete(s.output, key)
	case "skip":
		s.skipped++
		delete(s.output, key)
	case "fail":
		s.failed++
		s.failedTests = append(s.failedTests, key)
	}
}

func (s *summary) finishPackage(ev event, key string) {
	elapsed := time.Duration(ev.Elapsed * float64(time.Second)).Round(10 * time.Millisecond)
	switch ev.Action {
	case "pass":
		fmt.Fprintf(s.out, "ok    %s\t%s\n", ev.Package, elapsed)
		delete(s.output, key)
	case "skip":
		fmt.Fprintf(s.out, "?     %s\t[no test files]\n", ev.Package)
		delete(s.output, key)
	case "fail":
		fmt.Fprintf(s.out, "FAIL  %s\t%s\n", ev.Package, elapsed)
		s.failedPackages = append(s.failedPackages, ev.Package)
	}
}

// report prints the failures and the closing line, and reports whether
// everything passed.
func (s *summary) report() bool {
	for _, path := range s.failedBuilds {
		fmt.Fprintf(s.out, "\n=== build failed: %s\n%s", path, s.buildOutput[path])
	}
	for _, key := range s.failedTests {
		pkg, test, _ := strings.Cut(key, "\x00")
		fmt.Fprintf(s.out, "\n=== failed: %s %s\n%s", pkg, test, s.output[key])
	}

	// A package that failed with no failed test (a panic, a timeout, a
	// failing TestMain) shows only in its package-level output.
	failedTestPackages := map[string]bool{}
	for _, key := range s.failedTests {
		pkg, _, _ := strings.Cut(key, "\x00")
		failedTestPackages[pkg] = true
	}
	for _, pkg := range s.failedPackages {
		if out := s.output[pkg+"\x00"]; out != nil && !failedTestPackages[pkg] {
			fmt.Fprintf(s.out, "\n=== package failed: %s\n%s", pkg, out)
		}
	}

	ok := s.failed == 0 && len(s.failedPackages) == 0 && len(s.failedBuilds) == 0
	fmt.Fprintln(s.out)
	if !ok {
		unique := map[string]bool{}
		for _, name := range append(append([]string{}, s.failedPackages...), s.failedBuilds...) {
			unique[name] = true
		}
		names := make([]string, 0, len(unique))
		for name := range unique {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintf(s.out, "failed packages: %s\n", strings.Join(names, " "))
	}
	fmt.Fprintf(s.out, "tests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return ok
}
