-- Fencing tokens come from one sequence, so they only ever grow, even after a key is purged.
CREATE SEQUENCE "${schema}"."${table}_token_seq";

CREATE TABLE "${schema}"."${table}" (
    scope             text        NOT NULL,
    idem_key          text        NOT NULL,
    fingerprint       bytea       NOT NULL,
    -- Only two states are stored; "expired" and "released" follow from expires_at.
    state             text        NOT NULL CHECK (state IN ('IN_PROGRESS', 'COMPLETED')),
    token             bigint      NOT NULL,
    lease_expires_at  timestamptz,
    response_status   integer,
    response_headers  bytea,
    response_body     bytea,
    body_stored       boolean,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

-- The purge is the only lookup that is not by primary key.
CREATE INDEX "${table}_expires_at_idx" ON "${schema}"."${table}" (expires_at);
