package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// quickstartURL is the address the quickstart's commands use; the tests
// replace it with the address of the stack they started.
const quickstartURL = "https://localhost:8443"

// markerPattern matches the HTML comment that names the fenced block
// right after it, such as <!-- e2e:pause -->.
var markerPattern = regexp.MustCompile(`^<!--\s*e2e:([a-z0-9-]+)\s*-->$`)

// docBlocks returns the named bash blocks of a Markdown file: each
// `<!-- e2e:NAME -->` line followed by a ```bash fence.
func docBlocks(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()

	blocks := map[string]string{}
	var name string
	var body strings.Builder
	inBlock := false
	sc := bufio.NewScanner(f)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		switch {
		case inBlock && strings.TrimSpace(line) == "```":
			blocks[name] = body.String()
			inBlock, name = false, ""
			body.Reset()
		case inBlock:
			body.WriteString(line)
			body.WriteByte('\n')
		case name != "" && strings.TrimSpace(line) == "```bash":
			if _, dup := blocks[name]; dup {
				t.Fatalf("%s:%d: block e2e:%s appears twice", path, lineNo, name)
			}
			inBlock = true
		case name != "":
			t.Fatalf("%s:%d: marker e2e:%s must be followed directly by a ```bash fence", path, lineNo, name)
		default:
			if m := markerPattern.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				name = m[1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if inBlock || name != "" {
		t.Fatalf("%s: block e2e:%s is not closed", path, name)
	}
	return blocks
}

// quickstartBlocks returns the named blocks of docs/quickstart.md and
// fails when one of want is missing.
func quickstartBlocks(t testing.TB, want ...string) map[string]string {
	t.Helper()
	blocks := docBlocks(t, filepath.Join(repoRoot(t), "docs", "quickstart.md"))
	for _, name := range want {
		if strings.TrimSpace(blocks[name]) == "" {
			t.Fatalf("docs/quickstart.md has no block marked <!-- e2e:%s -->", name)
		}
	}
	return blocks
}

func TestQuickstartBlocksUseFixedAddress(t *testing.T) {
	t.Parallel()
	blocks := quickstartBlocks(t, "baseline", "pause", "claim", "progress", "resume", "audit-psql")
	for _, name := range []string{"baseline", "pause", "claim", "progress", "resume", "audit-api", "enqueue"} {
		if !strings.Contains(blocks[name], quickstartURL) {
			t.Errorf("block e2e:%s does not call %s, so the test cannot point it at its own server:\n%s", name, quickstartURL, blocks[name])
		}
	}
	for _, name := range []string{"baseline", "pause", "progress", "resume", "audit-api"} {
		if !strings.Contains(blocks[name], `"Authorization: Bearer $TOKEN"`) {
			t.Errorf("block e2e:%s does not send the operator token as $TOKEN:\n%s", name, blocks[name])
		}
	}
	if !strings.Contains(blocks["claim"], `"Authorization: Bearer $WORKER_TOKEN"`) {
		t.Errorf("block e2e:claim does not send the worker token as $WORKER_TOKEN:\n%s", blocks["claim"])
	}
}

func TestDocBlocksParser(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "doc.md")
	doc := "# Title\n\n<!-- e2e:one -->\n```bash\necho 1\necho 2\n```\n\n```bash\nnot marked\n```\n<!-- e2e:two -->\n```bash\necho two\n```\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks := docBlocks(t, path)
	if got, want := blocks["one"], "echo 1\necho 2\n"; got != want {
		t.Errorf("block one = %q, want %q", got, want)
	}
	if got, want := blocks["two"], "echo two\n"; got != want {
		t.Errorf("block two = %q, want %q", got, want)
	}
	if len(blocks) != 2 {
		t.Errorf("found %d blocks, want 2: %v", len(blocks), blocks)
	}
}
