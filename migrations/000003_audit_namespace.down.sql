-- Fails when two namespaces recorded the same version, because the old
-- constraint cannot hold then; delete one namespace's rows first.
DROP INDEX system_control_events_namespace_created_at_idx;
ALTER TABLE system_control_events DROP CONSTRAINT system_control_events_namespace_control_version_key;
ALTER TABLE system_control_events
    ADD CONSTRAINT system_control_events_control_version_key UNIQUE (control, version);
ALTER TABLE system_control_events DROP COLUMN namespace;
