// Package e2e holds end-to-end tests of the real binaries: brokerd over
// HTTPS with real Redis and PostgreSQL, two queue-worker processes, and the
// operator's commands from docs/quickstart.md run verbatim through bash,
// curl, jq, psql and brokerctl. It also checks docker-compose.yml and the
// Dockerfile without a Docker engine. The package has no code outside its
// tests.
package e2e
