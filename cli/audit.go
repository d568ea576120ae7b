package cli

import (
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/moonmind/broker/broker"
	"github.com/spf13/cobra"
)

func (a *app) auditCommand() *cobra.Command {
	var limit int
	var before string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Page the audit trail of pause, resume and restore events, newest first",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 500 {
				return usageErrorf("invalid --limit %d: use 1 to 500", limit)
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if before != "" {
				q.Set("before", before)
			}
			return getAndShow(a, cmd, "/api/system/control-events", q, "read the audit trail", "audit trail", func(page auditPage) {
				printAuditEvents(a.stdout, page.Items)
				if page.NextCursor != nil && *page.NextCursor != "" {
					fmt.Fprintf(a.stdout, "\nOlder events: brokerctl audit --limit %d --before %s\n", limit, *page.NextCursor)
				}
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "number of events to show, 1 to 500")
	cmd.Flags().StringVar(&before, "before", "", "show events older than this event id (the cursor printed under the previous page)")
	return cmd
}

// printAuditEvents writes audit events as a table, newest first as given.
func printAuditEvents(w io.Writer, events []broker.AuditEvent) {
	if len(events) == 0 {
		fmt.Fprintln(w, "(none)")
		return
	}
	t := newTable(w)
	row(t, "TIME", "ACTION", "MODE", "VERSION", "ACTOR", "REASON")
	for _, e := range events {
		created := e.CreatedAt
		row(t, formatTime(&created), e.Action, str(e.Mode), itoa(e.Version), str(e.Actor), truncate(e.Reason, 60))
	}
	t.Flush()
}
