package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries the end-to-end tests build from ./cmd.
var binaryNames = []string{"brokerd", "queue-worker", "brokerctl"}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// repoRoot returns the module root, the parent of this package's folder.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the e2e package source")
	}
	return filepath.Dir(filepath.Dir(file))
}

// buildBinaries builds brokerd, queue-worker and brokerctl once per test
// binary run into a temporary folder and returns that folder.
func buildBinaries(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mmbroker-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", dir + string(os.PathSeparator)}
		for _, name := range binaryNames {
			args = append(args, "./cmd/"+name)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		binDir = dir
	})
	if buildErr != nil {
		t.Fatalf("build the binaries: %v", buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// requireTools fails the test when a command-line tool it runs is
// missing; CI installs them (see .ci/run).
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; the end-to-end test runs it (Debian: apt-get install %s)", tool, debianPackage(tool))
		}
	}
}

func debianPackage(tool string) string {
	switch tool {
	case "psql":
		return "postgresql-client"
	default:
		return tool
	}
}

// randomToken returns a fresh secret for a bootstrap token.
func randomToken(prefix string) string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// artifacts is the folder that keeps the logs of one test's processes. A
// failed test prints every log with t.Log and keeps the folder; a passing
// test removes it.
type artifacts struct {
	t   testing.TB
	dir string
}

// newArtifacts creates the folder under $TEST_ARTIFACTS_DIR, or under the
// system temporary folder when that is unset.
func newArtifacts(t testing.TB) *artifacts {
	t.Helper()
	base := os.Getenv("TEST_ARTIFACTS_DIR")
	if base != "" {
		if err := os.MkdirAll(base, 0o755); err != nil {
			t.Fatalf("create TEST_ARTIFACTS_DIR %s: %v", base, err)
		}
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir, err := os.MkdirTemp(base, "e2e-"+name+"-")
	if err != nil {
		t.Fatalf("create artifacts folder: %v", err)
	}
	a := &artifacts{t: t, dir: dir}
	t.Cleanup(a.finish)
	return a
}

func (a *artifacts) path(name string) string { return filepath.Join(a.dir, name) }

// maxLoggedBytes caps how much of each log a failed test prints; the file
// itself is kept whole.
const maxLoggedBytes = 64 << 10

func (a *artifacts) finish() {
	if !a.t.Failed() {
		_ = os.RemoveAll(a.dir)
		return
	}
	entries, _ := os.ReadDir(a.dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := os.ReadFile(a.path(name))
		if err != nil {
			a.t.Logf("read %s: %v", name, err)
			continue
		}
		if len(data) > maxLoggedBytes {
			data = append([]byte("[... cut ...]\n"), data[len(data)-maxLoggedBytes:]...)
		}
		a.t.Logf("----- %s -----\n%s", name, data)
	}
	a.t.Logf("logs kept in %s", a.dir)
}

// process is a child process whose standard output and error go to a log
// file in the artifacts folder.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// startProcess starts bin with args and env (added to a minimal base
// environment) and stops it at cleanup.
func startProcess(t testing.TB, a *artifacts, name, bin string, env []string, args ...string) *process {
	t.Helper()
	logPath := a.path(name + ".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log for %s: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if err := p.stop(45 * time.Second); err != nil {
			t.Errorf("%v", err)
		}
	})
	return p
}

// baseEnv is the environment every child process starts from: enough to
// run, and nothing of the caller's broker settings.
func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8"}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	return env
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to timeout for the process to exit, then
// kills it. It reports an error when the process needed SIGKILL or exited
// with a failure status after SIGTERM.
func (p *process) stop(timeout time.Duration) error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", p.name, timeout)
	}
	var exitErr *exec.ExitError
	if errors.As(p.waitErr, &exitErr) {
		return fmt.Errorf("%s exited with %v after SIGTERM; want status 0", p.name, p.waitErr)
	}
	return nil
}

// logLines returns the lines the process wrote so far.
func (p *process) logLines(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(p.logPath)
	if err != nil {
		t.Fatalf("open %s: %v", p.logPath, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// httpsClient trusts only the CA in caFile.
func httpsClient(t testing.TB, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &http.Client{
		Timeout:   40 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}
