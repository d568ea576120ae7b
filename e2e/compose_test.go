package e2e

// No Docker engine runs where these tests run, so `docker compose up`
// cannot prove docker-compose.yml. These tests parse it and the Dockerfile
// and check what a typo would break: the services, their health checks,
// the start order, the environment each binary reads and the commands the
// image must contain.

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// composeFile lists every key docker-compose.yml uses; the strict parser
// rejects any other, so a misspelt key fails the test.
type composeFile struct {
	Name         string                    `yaml:"name"`
	BrokerClient map[string]string         `yaml:"x-broker-client"`
	Services     map[string]composeService `yaml:"services"`
	Volumes      map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Build           any                          `yaml:"build"`
	Image           string                       `yaml:"image"`
	User            string                       `yaml:"user"`
	Command         []string                     `yaml:"command"`
	Environment     map[string]string            `yaml:"environment"`
	Ports           []string                     `yaml:"ports"`
	Volumes         []string                     `yaml:"volumes"`
	DependsOn       map[string]composeDependency `yaml:"depends_on"`
	Healthcheck     *composeHealthcheck          `yaml:"healthcheck"`
	Deploy          map[string]any               `yaml:"deploy"`
	StopGracePeriod string                       `yaml:"stop_grace_period"`
	Restart         string                       `yaml:"restart"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatalf("read docker-compose.yml: %v", err)
	}
	var c composeFile
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	return c
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)

	for _, name := range []string{"api", "queue-worker", "redis", "postgres"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %q is missing", name)
		}
	}
	for _, name := range []string{"api", "redis", "postgres"} {
		hc := c.Services[name].Healthcheck
		if hc == nil || len(hc.Test) < 2 {
			t.Errorf("service %q has no health check test", name)
		}
	}

	redis := c.Services["redis"]
	if i := slices.Index(redis.Command, "--appendonly"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != "yes" {
		t.Errorf("redis command %v does not turn the append-only file on (--appendonly yes)", redis.Command)
	}

	api := c.Services["api"]
	for dep, want := range map[string]string{"redis": "service_healthy", "postgres": "service_healthy", "certs": "service_completed_successfully"} {
		if got := api.DependsOn[dep].Condition; got != want {
			t.Errorf("api depends_on %s condition %q, want %q", dep, got, want)
		}
	}
	if got := c.Services["queue-worker"].DependsOn["api"].Condition; got != "service_healthy" {
		t.Errorf("queue-worker depends_on api condition %q, want service_healthy", got)
	}
	if !slices.ContainsFunc(api.Ports, func(p string) bool { return strings.HasSuffix(p, ":8443:8443") || p == "8443:8443" }) {
		t.Errorf("api ports %v do not publish 8443, the address of the quickstart", api.Ports)
	}
	if !strings.Contains(strings.Join(api.Healthcheck.Test, " "), "/readyz") {
		t.Errorf("api health check %v does not call /readyz", api.Healthcheck.Test)
	}
}

func TestComposeConnectionSettings(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	api := c.Services["api"]
	worker := c.Services["queue-worker"]

	for _, key := range []string{"BROKER_ADDR", "BROKER_REDIS_URL", "BROKER_DATABASE_URL", "BROKER_TLS_CERT", "BROKER_TLS_KEY", "BROKER_OPERATOR_TOKEN", "BROKER_WORKER_TOKEN"} {
		if api.Environment[key] == "" {
			t.Errorf("api environment lacks %s", key)
		}
	}
	for _, key := range []string{"BROKER_URL", "BROKER_TOKEN", "BROKER_CACERT"} {
		if worker.Environment[key] == "" {
			t.Errorf("queue-worker environment lacks %s", key)
		}
	}

	// Each URL must name the service that serves it.
	hostOf := func(raw string) string {
		u, err := url.Parse(strings.NewReplacer("${POSTGRES_PASSWORD:-broker}", "broker").Replace(raw))
		if err != nil {
			t.Fatalf("parse %q: %v", raw, err)
		}
		return u.Hostname()
	}
	if h := hostOf(api.Environment["BROKER_REDIS_URL"]); h != "redis" {
		t.Errorf("BROKER_REDIS_URL host %q, want the redis service", h)
	}
	if h := hostOf(api.Environment["BROKER_DATABASE_URL"]); h != "postgres" {
		t.Errorf("BROKER_DATABASE_URL host %q, want the postgres service", h)
	}
	if h := hostOf(worker.Environment["BROKER_URL"]); h != "api" {
		t.Errorf("queue-worker BROKER_URL host %q, want the api service", h)
	}
	if !strings.HasPrefix(worker.Environment["BROKER_URL"], "https://") {
		t.Errorf("queue-worker BROKER_URL %q is not HTTPS although api serves TLS", worker.Environment["BROKER_URL"])
	}

	// The worker must trust the CA that signed the api's certificate, and
	// the certificate must cover the host name the worker dials.
	certs := c.Services["certs"]
	if !strings.Contains(strings.Join(certs.Command, " "), "api") {
		t.Errorf("certs command %v does not put the api host name in the certificate", certs.Command)
	}
	caDir := func(s composeService) string {
		for _, v := range s.Volumes {
			if parts := strings.Split(v, ":"); len(parts) >= 2 && parts[1] == "/tls" {
				return parts[0]
			}
		}
		return ""
	}
	if a, w, ct := caDir(api), caDir(worker), caDir(certs); a == "" || a != w || a != ct {
		t.Errorf("certs, api and queue-worker mount different /tls folders: %q, %q, %q", ct, a, w)
	}
	if !strings.HasPrefix(worker.Environment["BROKER_CACERT"], "/tls/") {
		t.Errorf("queue-worker BROKER_CACERT %q is not in the shared /tls folder", worker.Environment["BROKER_CACERT"])
	}
}

// TestComposeEnvMatchesBinaries checks that every variable the compose
// file sets is one the binary documents in its --help, so a renamed
// setting cannot be silently ignored.
func TestComposeEnvMatchesBinaries(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	bin := buildBinaries(t)
	for service, binary := range map[string]string{"api": "brokerd", "queue-worker": "queue-worker"} {
		out, _ := exec.Command(filepath.Join(bin, binary), "--help").CombinedOutput()
		help := string(out)
		var keys []string
		for key := range c.Services[service].Environment {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			if !strings.Contains(help, key) {
				t.Errorf("%s sets %s, which `%s --help` does not list", service, key, binary)
			}
		}
	}
}

var buildTargetPattern = regexp.MustCompile(`\./cmd/([a-z0-9-]+)`)

func TestDockerfileBuildsEveryCommand(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	text := string(data)

	var stages []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(line)), "FROM ") {
			stages = append(stages, strings.TrimSpace(line))
		}
	}
	if len(stages) < 2 || !strings.Contains(stages[0], "golang:") {
		t.Errorf("Dockerfile stages %v, want a golang builder followed by a runtime stage", stages)
	}
	if !strings.Contains(text, "COPY --from=build") {
		t.Error("Dockerfile does not copy the binaries from the build stage")
	}

	built := map[string]bool{}
	for _, m := range buildTargetPattern.FindAllStringSubmatch(text, -1) {
		built[m[1]] = true
		if _, err := os.Stat(filepath.Join(root, "cmd", m[1], "main.go")); err != nil {
			t.Errorf("Dockerfile builds ./cmd/%s, which has no main.go: %v", m[1], err)
		}
	}

	// Every command a compose service runs from the image must be built.
	c := loadCompose(t)
	for name, svc := range c.Services {
		if svc.Build == nil || len(svc.Command) == 0 {
			continue
		}
		program := svc.Command[0]
		if program == "sh" && len(svc.Command) == 3 {
			program = strings.Fields(svc.Command[2])[0]
		}
		if !built[program] {
			t.Errorf("service %s runs %q, which the Dockerfile does not build", name, program)
		}
	}
}
