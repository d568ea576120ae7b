package broker

import "strings"

// keys builds every Redis key name of one deployment. All keys share the
// hash tag {namespace}, so they live in one Redis Cluster slot and a script
// may touch any of them. docs/redis-keys.md documents each key.
type keys struct {
	prefix string // "{namespace}:"
}

func newKeys(namespace string) keys {
	return keys{prefix: "{" + namespace + "}:"}
}

// Prefix returns the common prefix, which scripts use to build per-job and
// per-type keys.
func (k keys) Prefix() string { return k.prefix }

func (k keys) Job(id string) string       { return k.prefix + "job:" + id }
func (k keys) JobEvents(id string) string { return k.prefix + "job:" + id + ":events" }
func (k keys) Ready() string              { return k.prefix + "ready" }
func (k keys) ReadyType(t string) string  { return k.prefix + "ready:" + t }
func (k keys) Delayed() string            { return k.prefix + "delayed" }
func (k keys) Inflight() string           { return k.prefix + "inflight" }
func (k keys) Quiesced() string           { return k.prefix + "quiesced" }
func (k keys) Cancelling() string         { return k.prefix + "cancelling" }
func (k keys) Status(s Status) string     { return k.prefix + "status:" + string(s) }
func (k keys) Finished() string           { return k.prefix + "finished" }
func (k keys) Seq() string                { return k.prefix + "seq" }
func (k keys) Idempotency(key string) string {
	return k.prefix + "idem:" + key
}
func (k keys) Pause() string          { return k.prefix + "pause" }
func (k keys) Outbox() string         { return k.prefix + "outbox" }
func (k keys) Workers() string        { return k.prefix + "workers" }
func (k keys) WorkerVersions() string { return k.prefix + "workers:version" }
func (k keys) Channel() string        { return k.prefix + "notify" }

// namespaceValid reports whether ns can be used inside a hash tag.
func namespaceValid(ns string) bool {
	return ns != "" && len(ns) <= 64 && !strings.ContainsAny(ns, "{}: \t\r\n")
}
