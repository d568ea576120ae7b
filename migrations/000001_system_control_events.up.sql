-- The audit trail of the worker pause switch: one row per accepted pause,
-- resume or restore. Rows are only ever inserted, never updated.
CREATE TABLE system_control_events (
    -- The event id the pause script made in Redis, so a retried insert of
    -- the same event is a no-op.
    id uuid PRIMARY KEY,
    control text NOT NULL,
    action text NOT NULL CHECK (action IN ('pause', 'resume', 'restore')),
    mode text NULL,
    reason text NOT NULL,
    actor text NULL,
    -- The pause version after the change. Each change raises it by one.
    version bigint NOT NULL,
    state_before jsonb NULL,
    state_after jsonb NULL,
    -- When Redis applied the change, which may be long before the insert
    -- when Postgres was down.
    created_at timestamptz NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT system_control_events_control_version_key UNIQUE (control, version)
);

CREATE INDEX system_control_events_created_at_idx ON system_control_events (created_at);
