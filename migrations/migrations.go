// Package migrations embeds the numbered PostgreSQL schema migrations of
// MoonMind Broker. golang-migrate applies them in order, each in its own
// transaction; the audit package runs them.
package migrations

import "embed"

// FS holds every NNNNNN_name.up.sql and .down.sql file of this folder.
//
//go:embed *.sql
var FS embed.FS
