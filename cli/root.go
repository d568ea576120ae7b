// Package cli is the command tree of brokerctl, the operator's terminal
// client of the MoonMind Broker REST API.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes of brokerctl.
const (
	ExitOK      = 0 // the command did what was requested
	ExitError   = 1 // the API or the network failed, or the request was rejected
	ExitUsage   = 2 // bad flags or arguments, or wait-drained while not paused
	ExitTimeout = 3 // wait-drained or pause --wait ran out of time
)

// Defaults of the global flags.
const (
	DefaultURL            = "https://localhost:8443"
	DefaultRequestTimeout = 30 * time.Second
)

// usageError marks an error that exits with ExitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// timeoutError marks an error that exits with ExitTimeout.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string { return e.err.Error() }
func (e *timeoutError) Unwrap() error { return e.err }

// app holds the global flags and the output streams of one run.
type app struct {
	url            string
	token          string
	caFile         string
	output         string
	requestTimeout time.Duration

	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
}

// Run runs brokerctl with args (without the program name), writing to
// stdout and stderr, and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, now: time.Now}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)

	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	fmt.Fprintf(stderr, "brokerctl: %v\n", err)
	if code == ExitUsage && !isAPIError(err) {
		fmt.Fprintln(stderr, "Run 'brokerctl --help' or 'brokerctl COMMAND --help' for usage.")
	}
	return code
}

func exitCode(err error) int {
	var usage *usageError
	var timeout *timeoutError
	switch {
	case errors.As(err, &timeout):
		return ExitTimeout
	case errors.As(err, &usage):
		return ExitUsage
	case strings.HasPrefix(err.Error(), "unknown command"),
		strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		// Cobra reports these itself, before any of our code runs.
		return ExitUsage
	}
	return ExitError
}

func isAPIError(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr)
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "brokerctl",
		Short: "Operate a MoonMind Broker: pause and resume workers, watch the drain, manage jobs and tokens",
		Long: `brokerctl drives a MoonMind Broker through its REST API with an operator token.

A typical upgrade:
  brokerctl pause --mode drain --reason "Upgrading worker images" --wait --timeout 30m
  ... upgrade the workers ...
  brokerctl resume --reason "Upgrade done"

Exit codes: 0 success, 1 error, 2 usage error (or wait-drained while not paused), 3 timeout.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != "table" && a.output != "json" {
				return usageErrorf("invalid --output %q: use table or json", a.output)
			}
			if a.requestTimeout < 0 {
				return usageErrorf("invalid --timeout %s: use 0 (no limit) or a positive duration such as 30s", a.requestTimeout)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{err: err}
	})

	flags := root.PersistentFlags()
	flags.StringVar(&a.url, "url", envOr("BROKER_URL", DefaultURL), "base URL of the broker API (env BROKER_URL)")
	// The token is read from the environment at run time, not used as the
	// flag default, so that --help never prints it.
	flags.StringVar(&a.token, "token", "", "operator token sent as a bearer token (env BROKER_TOKEN)")
	flags.StringVar(&a.caFile, "cacert", os.Getenv("BROKER_CACERT"), "PEM file of the certificate authorities to trust for HTTPS, in place of the system ones (env BROKER_CACERT)")
	flags.StringVarP(&a.output, "output", "o", envOr("BROKER_OUTPUT", "table"), "output format: table or json (env BROKER_OUTPUT)")
	flags.DurationVar(&a.requestTimeout, "timeout", envDuration("BROKER_TIMEOUT", DefaultRequestTimeout), "time limit of each API request, such as 30s; 0 means no limit (env BROKER_TIMEOUT). In pause and wait-drained, --timeout limits the wait for the drain instead")

	root.AddCommand(
		a.statusCommand(),
		a.pauseCommand(),
		a.resumeCommand(),
		a.waitDrainedCommand(),
		a.auditCommand(),
		a.jobsCommand(),
		a.workersCommand(),
		a.tokensCommand(),
	)
	return root
}

// client builds the API client from the global flags.
func (a *app) client() (*client, error) {
	token := a.token
	if token == "" {
		token = os.Getenv("BROKER_TOKEN")
	}
	return newClient(a.url, token, a.caFile, a.requestTimeout)
}

// jsonOutput reports whether --output json was chosen.
func (a *app) jsonOutput() bool { return a.output == "json" }

// exactArgs is cobra.ExactArgs with a usage error that names the missing
// argument.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("%s takes %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, ", "), len(args))
		}
		return nil
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// envDuration parses the duration in the environment variable name, or
// returns fallback when it is unset or not a duration.
func envDuration(name string, fallback time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return fallback
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fallback
	}
	return d
}
