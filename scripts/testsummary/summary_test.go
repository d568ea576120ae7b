package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The event lines below are copied from `go test -json` of Go 1.26, with
// the Time fields dropped.
const (
	passingPackage = `{"Action":"start","Package":"example.com/m/good"}
{"Action":"run","Package":"example.com/m/good","Test":"TestOK"}
{"Action":"output","Package":"example.com/m/good","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"example.com/m/good","Test":"TestOK","Elapsed":0}
{"Action":"run","Package":"example.com/m/good","Test":"TestSkip"}
{"Action":"skip","Package":"example.com/m/good","Test":"TestSkip","Elapsed":0}
{"Action":"pass","Package":"example.com/m/good","Elapsed":0.006}
`
	// setupFailure is a test file that imports a package no module
	// provides: the build action is named after the missing import.
	setupFailure = `{"ImportPath":"example.com/m/missing","Action":"build-output","Output":"# example.com/m/setup\n"}
{"ImportPath":"example.com/m/missing","Action":"build-output","Output":"setup/setup_test.go:2:20: no required module provides package example.com/m/missing; to add it:\n"}
{"ImportPath":"example.com/m/missing","Action":"build-fail"}
{"Action":"start","Package":"example.com/m/setup"}
{"Action":"output","Package":"example.com/m/setup","Output":"FAIL\texample.com/m/setup [setup failed]\n"}
{"Action":"fail","Package":"example.com/m/setup","Elapsed":0,"FailedBuild":"example.com/m/missing"}
`
	// sharedBuildFailure is a library that does not compile, imported by
	// the tests of two packages.
	sharedBuildFailure = `{"ImportPath":"example.com/m/lib","Action":"build-output","Output":"# example.com/m/lib\n"}
{"ImportPath":"example.com/m/lib","Action":"build-output","Output":"lib/lib.go:2:13: cannot use \"s\" (untyped string constant) as int value in variable declaration\n"}
{"ImportPath":"example.com/m/lib","Action":"build-fail"}
{"Action":"start","Package":"example.com/m/a"}
{"Action":"output","Package":"example.com/m/a","Output":"FAIL\texample.com/m/a [build failed]\n"}
{"Action":"fail","Package":"example.com/m/a","Elapsed":0,"FailedBuild":"example.com/m/lib"}
{"Action":"start","Package":"example.com/m/b"}
{"Action":"output","Package":"example.com/m/b","Output":"FAIL\texample.com/m/b [build failed]\n"}
{"Action":"fail","Package":"example.com/m/b","Elapsed":0,"FailedBuild":"example.com/m/lib"}
`
	failingTest = `{"Action":"start","Package":"example.com/m/failing"}
{"Action":"run","Package":"example.com/m/failing","Test":"TestBad"}
{"Action":"output","Package":"example.com/m/failing","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"example.com/m/failing","Test":"TestBad","Output":"    f_test.go:3: want 2, got 3\n"}
{"Action":"fail","Package":"example.com/m/failing","Test":"TestBad","Elapsed":0}
{"Action":"output","Package":"example.com/m/failing","Output":"FAIL\n"}
{"Action":"fail","Package":"example.com/m/failing","Elapsed":0.01}
`
	// testMainFailure is a TestMain that exits 3 before any test runs.
	testMainFailure = `{"Action":"start","Package":"example.com/m/mainfail"}
{"Action":"output","Package":"example.com/m/mainfail","Output":"set-up: cannot open fixture\n"}
{"Action":"output","Package":"example.com/m/mainfail","Output":"FAIL\texample.com/m/mainfail\t0.005s\n"}
{"Action":"fail","Package":"example.com/m/mainfail","Elapsed":0.01}
`
	unmatchedPattern = `{"ImportPath":"./faults/...","Action":"build-output","Output":"pattern ./faults/...: lstat ./faults/: no such file or directory\n"}
{"ImportPath":"./faults/...","Action":"build-fail"}
{"Action":"start","Package":"./faults/..."}
{"Action":"fail","Package":"./faults/...","Elapsed":0,"FailedBuild":"./faults/..."}
`
)

// summarize runs the summary over input and returns its output and
// whether it reported success.
func summarize(t *testing.T, input string) (string, bool) {
	t.Helper()
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(strings.NewReader(input)); err != nil {
		t.Fatalf("read: %v", err)
	}
	ok := s.report()
	return out.String(), ok
}

func lastLine(output string) string {
	lines := strings.Split(strings.TrimRight(output, "\n"), "\n")
	return lines[len(lines)-1]
}

// lineWithPrefix returns the first output line that starts with prefix,
// or "" when there is none.
func lineWithPrefix(output, prefix string) string {
	for line := range strings.SplitSeq(output, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

func TestSummaryAllPassed(t *testing.T) {
	t.Parallel()
	out, ok := summarize(t, passingPackage)

	if !ok {
		t.Errorf("report() = false, want true; output:\n%s", out)
	}
	if got, want := lastLine(out), "tests: 1 passed, 0 failed, 1 skipped"; got != want {
		t.Errorf("closing line = %q, want %q", got, want)
	}
	if line := lineWithPrefix(out, "failed packages:"); line != "" {
		t.Errorf("output has %q, want no failed packages line", line)
	}
}

func TestSummarySetupFailureCounted(t *testing.T) {
	t.Parallel()
	out, ok := summarize(t, passingPackage+setupFailure)

	if ok {
		t.Errorf("report() = true, want false for a package that did not build")
	}
	if got, want := lastLine(out), "tests: 1 passed, 0 failed, 1 skipped, 1 package did not build"; got != want {
		t.Errorf("closing line = %q, want %q", got, want)
	}
	if got, want := lineWithPrefix(out, "failed packages:"), "failed packages: example.com/m/setup"; got != want {
		t.Errorf("failed packages line = %q, want %q (the missing import is no package)", got, want)
	}
	if !strings.Contains(out, "=== did not build: example.com/m/setup\n") {
		t.Errorf("output lacks the did-not-build heading for example.com/m/setup:\n%s", out)
	}
	if !strings.Contains(out, "no required module provides package example.com/m/missing") {
		t.Errorf("output lacks the go command's explanation:\n%s", out)
	}
}

func TestSummarySharedBuildFailurePrintedOnce(t *testing.T) {
	t.Parallel()
	out, ok := summarize(t, sharedBuildFailure)

	if ok {
		t.Errorf("report() = true, want false")
	}
	if got, want := lastLine(out), "tests: 0 passed, 0 failed, 0 skipped, 2 packages did not build"; got != want {
		t.Errorf("closing line = %q, want %q", got, want)
	}
	if got := strings.Count(out, "cannot use \"s\""); got != 1 {
		t.Errorf("compiler error printed %d times, want 1:\n%s", got, out)
	}
	if !strings.Contains(out, "=== did not build: example.com/m/a example.com/m/b\n") {
		t.Errorf("output lacks one heading naming both packages:\n%s", out)
	}
}

func TestSummaryMixedFailures(t *testing.T) {
	t.Parallel()
	out, ok := summarize(t, passingPackage+setupFailure+failingTest+testMainFailure)

	if ok {
		t.Errorf("report() = true, want false")
	}
	want := "tests: 1 passed, 1 failed, 1 skipped, 1 package did not build, 1 package failed outside a test"
	if got := lastLine(out); got != want {
		t.Errorf("closing line = %q, want %q", got, want)
	}
	wantPackages := "failed packages: example.com/m/failing example.com/m/mainfail example.com/m/setup"
	if got := lineWithPrefix(out, "failed packages:"); got != wantPackages {
		t.Errorf("failed packages line = %q, want %q", got, wantPackages)
	}
	if !strings.Contains(out, "=== failed: example.com/m/failing TestBad\n=== RUN   TestBad\n    f_test.go:3: want 2, got 3\n") {
		t.Errorf("output lacks the failed test's output:\n%s", out)
	}
	if !strings.Contains(out, "=== package failed: example.com/m/mainfail\nset-up: cannot open fixture\n") {
		t.Errorf("output lacks the TestMain failure:\n%s", out)
	}
	if strings.Contains(out, "=== package failed: example.com/m/failing") {
		t.Errorf("package with a failed test is also reported as failed outside a test:\n%s", out)
	}
}

func TestSummaryClosingLineKeepsPrefix(t *testing.T) {
	t.Parallel()
	out, _ := summarize(t, failingTest+sharedBuildFailure)

	// CI parsers read "tests: N passed, N failed" from the start of the
	// closing line.
	if got := lastLine(out); !strings.HasPrefix(got, "tests: 0 passed, 1 failed, ") {
		t.Errorf("closing line = %q, want it to start with %q", got, "tests: 0 passed, 1 failed, ")
	}
}

func TestSummaryUnmatchedPattern(t *testing.T) {
	t.Parallel()
	out, ok := summarize(t, passingPackage+unmatchedPattern)

	if ok {
		t.Errorf("report() = true, want false")
	}
	if line := lineWithPrefix(out, "failed packages:"); line != "" {
		t.Errorf("output has %q, want the pattern on its own line", line)
	}
	if got, want := lineWithPrefix(out, "failed patterns:"), "failed patterns: ./faults/..."; got != want {
		t.Errorf("failed patterns line = %q, want %q", got, want)
	}
	if !strings.Contains(out, "lstat ./faults/: no such file or directory") {
		t.Errorf("output lacks the go command's explanation:\n%s", out)
	}
}

func TestSummaryPassesPlainLines(t *testing.T) {
	t.Parallel()
	out, ok := summarize(t, "go: downloading example.com/x v1.0.0\n"+passingPackage)

	if !ok {
		t.Errorf("report() = false, want true; output:\n%s", out)
	}
	if !strings.HasPrefix(out, "go: downloading example.com/x v1.0.0\n") {
		t.Errorf("output does not start with the plain line:\n%s", out)
	}
}

// TestSummaryRealGoTest runs the go command on a scratch module with one
// passing package, one whose test imports a missing package and one that
// does not compile, so the test notices when the go command changes its
// event format.
func TestSummaryRealGoTest(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not on PATH: %v", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":                "module example.com/scratch\n\ngo 1.24\n",
		"good/good_test.go":     "package good\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {}\n",
		"setup/setup_test.go":   "package setup\n\nimport (\n\t\"testing\"\n\n\t_ \"example.com/scratch/missing\"\n)\n\nfunc TestOK(t *testing.T) {}\n",
		"broken/broken_test.go": "package broken\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) { var n int = \"s\"; _ = n }\n",
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.CommandContext(t.Context(), goBin, "test", "-json", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	stream, err := cmd.Output()
	if err == nil {
		t.Fatalf("go test succeeded on a module with two broken packages; output:\n%s", stream)
	}

	out, ok := summarize(t, string(stream))
	if ok {
		t.Errorf("report() = true, want false; output:\n%s", out)
	}
	if got, want := lastLine(out), "tests: 1 passed, 0 failed, 0 skipped, 2 packages did not build"; got != want {
		t.Errorf("closing line = %q, want %q; output:\n%s", got, want, out)
	}
	wantPackages := "failed packages: example.com/scratch/broken example.com/scratch/setup"
	if got := lineWithPrefix(out, "failed packages:"); got != wantPackages {
		t.Errorf("failed packages line = %q, want %q", got, wantPackages)
	}
}
