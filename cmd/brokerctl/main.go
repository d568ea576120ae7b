// Command brokerctl is the operator's terminal client of MoonMind Broker:
// pause and resume workers, wait for the drain, and manage jobs and tokens.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/moonmind/broker/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
