-- API tokens created through POST /api/tokens. Only the SHA-256 hash of a
-- token is stored; the token itself is shown once, when it is created.
CREATE TABLE api_tokens (
    id uuid PRIMARY KEY,
    -- The name is the actor recorded in the audit trail.
    name text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('operator', 'producer', 'worker')),
    -- For worker tokens: {"allowedTypes": [...], "capabilities": [...]}.
    policy jsonb NOT NULL DEFAULT '{}'::jsonb,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NULL,
    -- A revoked token stays listed but no longer authenticates.
    revoked_at timestamptz NULL
);
