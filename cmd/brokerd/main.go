// Command brokerd runs the MoonMind Broker API server: the REST API, the
// long-poll notifier, the lease reaper and the audit relay. "brokerd migrate"
// applies the PostgreSQL migrations and exits.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "brokerd:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	opts := &options{}
	root := &cobra.Command{
		Use:           "brokerd [serve|migrate]",
		Short:         "MoonMind Broker API server",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return runServe(cmd, opts) },
	}
	opts.register(root.PersistentFlags())

	root.AddCommand(&cobra.Command{
		Use:   "serve",
		Short: "Serve the API, run the reaper and the audit relay (the default)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runServe(cmd, opts) },
	})
	root.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "Apply the PostgreSQL migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.load(cmd.Flags()); err != nil {
				return err
			}
			return migrate(cmd.Context(), opts)
		},
	})
	return root
}

func runServe(cmd *cobra.Command, opts *options) error {
	if err := opts.load(cmd.Flags()); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, opts)
}
