-- Deployments that share one Redis under different namespaces may also
-- share one database. Each keeps its own pause version sequence, so the
-- audit trail is kept apart by namespace and versions are unique only
-- within one namespace. Rows written before this migration belong to the
-- default namespace.
ALTER TABLE system_control_events ADD COLUMN namespace text NOT NULL DEFAULT 'mm';
ALTER TABLE system_control_events ALTER COLUMN namespace DROP DEFAULT;
ALTER TABLE system_control_events DROP CONSTRAINT system_control_events_control_version_key;
ALTER TABLE system_control_events
    ADD CONSTRAINT system_control_events_namespace_control_version_key UNIQUE (namespace, control, version);
CREATE INDEX system_control_events_namespace_created_at_idx ON system_control_events (namespace, created_at);
