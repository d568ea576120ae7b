package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json and, for build
// events, the go command itself).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
	// ImportPath names the build action of a build-output or build-fail
	// event. For a test binary it reads "pkg [pkg.test]". For a setup
	// failure it is the missing import or the unmatched pattern, which
	// need not be a package of the module.
	ImportPath string
	// FailedBuild is set on a package's fail event when the package did
	// not build, and names the build action whose output explains why.
	FailedBuild string
}

type summary struct {
	out io.Writer

	passed, failed, skipped int

	// output holds the lines of each test ("pkg\x00Test") and of each
	// package ("pkg\x00"), printed only when that test or package fails.
	output map[string]*strings.Builder
	// buildOutput holds compiler and setup output per build action
	// (event.ImportPath).
	buildOutput map[string]*strings.Builder

	failedTests    []string
	failedPackages []string
	// unbuilt maps each package that did not build to its FailedBuild.
	unbuilt map[string]string
	// failedBuilds lists build actions in the order they failed.
	failedBuilds []string
}

func newSummary(out io.Writer) *summary {
	return &summary{
		out:         out,
		output:      map[string]*strings.Builder{},
		buildOutput: map[string]*strings.Builder{},
		unbuilt:     map[string]string{},
	}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			// Lines that are not JSON pass through: go commands before
			// 1.24 printed build errors as plain text.
			fmt.Fprintln(s.out, string(line))
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
		if ev.FailedBuild != "" {
			fmt.Fprintf(s.out, "FAIL  %s\t[did not build]\n", ev.Package)
			s.unbuilt[ev.Package] = ev.FailedBuild
		} else {
			fmt.Fprintf(s.out, "FAIL  %s\t%s\n", ev.Package, elapsed)
		}
		s.failedPackages = append(s.failedPackages, ev.Package)
	}
}

// report prints the failures and the closing line, and reports whether
// everything passed.
func (s *summary) report() bool {
	s.reportBuilds()
	for _, key := range s.failedTests {
		pkg, test, _ := strings.Cut(key, "\x00")
		fmt.Fprintf(s.out, "\n=== failed: %s %s\n%s", pkg, test, s.output[key])
	}
	outsideTests := s.reportPackagesOutsideTests()

	ok := s.failed == 0 && len(s.failedPackages) == 0 && len(s.failedBuilds) == 0
	fmt.Fprintln(s.out)
	// Only names from the package events are listed: a build action's
	// import path may be a missing import that is no package of this
	// module. A pattern that failed to match reaches the package events
	// under its own spelling, so it gets a line of its own.
	var packages, patterns []string
	for _, name := range unique(s.failedPackages) {
		if isPattern(name) {
			patterns = append(patterns, name)
		} else {
			packages = append(packages, name)
		}
	}
	if len(packages) > 0 {
		fmt.Fprintf(s.out, "failed packages: %s\n", strings.Join(packages, " "))
	}
	if len(patterns) > 0 {
		fmt.Fprintf(s.out, "failed patterns: %s\n", strings.Join(patterns, " "))
	}

	line := fmt.Sprintf("tests: %d passed, %d failed, %d skipped", s.passed, s.failed, s.skipped)
	if n := len(s.unbuilt); n > 0 {
		line += fmt.Sprintf(", %s did not build", countPackages(n))
	}
	if outsideTests > 0 {
		line += fmt.Sprintf(", %s failed outside a test", countPackages(outsideTests))
	}
	fmt.Fprintln(s.out, line)
	return ok
}

// reportBuilds prints the output of each failed build once, headed by
// the packages it kept from building. Several packages share one failed
// build when they import the same broken package.
func (s *summary) reportBuilds() {
	blocked := map[string][]string{}
	for pkg, build := range s.unbuilt {
		blocked[build] = append(blocked[build], pkg)
	}
	printed := map[string]bool{}
	builds := append(append([]string{}, s.failedBuilds...), sortedKeys(blocked)...)
	for _, build := range builds {
		if printed[build] {
			continue
		}
		printed[build] = true

		pkgs := blocked[build]
		sort.Strings(pkgs)
		out := ""
		if b := s.buildOutput[build]; b != nil {
			out = b.String()
		}
		if out == "" {
			out = "(the go command printed no build output)\n"
		}
		if len(pkgs) == 0 {
			// A build-fail event with no package fail event naming it.
			fmt.Fprintf(s.out, "\n=== build failed: %s\n%s", build, out)
			continue
		}
		fmt.Fprintf(s.out, "\n=== did not build: %s\n%s", strings.Join(pkgs, " "), out)
	}
}

// reportPackagesOutsideTests prints the package-level output of each
// package that failed with no failed test and no build failure (a panic
// outside a test, a timeout, a failing TestMain), and returns how many
// there were.
func (s *summary) reportPackagesOutsideTests() int {
	failedTestPackages := map[string]bool{}
	for _, key := range s.failedTests {
		pkg, _, _ := strings.Cut(key, "\x00")
		failedTestPackages[pkg] = true
	}
	count := 0
	for _, pkg := range unique(s.failedPackages) {
		if failedTestPackages[pkg] || s.unbuilt[pkg] != "" {
			continue
		}
		count++
		fmt.Fprintf(s.out, "\n=== package failed: %s\n%s", pkg, s.output[pkg+"\x00"])
	}
	return count
}

// isPattern reports whether name is a package pattern as typed on the
// command line (./faults/..., ../x) rather than an import path: import
// paths neither start with a dot nor contain "...".
func isPattern(name string) bool {
	return strings.HasPrefix(name, ".") || strings.Contains(name, "...")
}

func countPackages(n int) string {
	if n == 1 {
		return "1 package"
	}
	return fmt.Sprintf("%d packages", n)
}

func unique(names []string) []string {
	seen := map[string]bool{}
	for _, name := range names {
		seen[name] = true
	}
	return sortedKeys(seen)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
