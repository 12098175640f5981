-- Steps (SPEC §12): the result of each call that a request holding a key made to another service,
-- stored as soon as the call returned, in its own commit. Rows belong to the request that made
-- them (scope, key and fingerprint), not to one run of it: releasing a key deletes its row in the
-- keys table but leaves these, so that the retry resumes after its last completed step. They
-- expire no later than the key would (expires_at is the time to live from when the step was
-- stored) and are purged then.
CREATE TABLE "${schema}"."${table}_steps" (
    scope        text        NOT NULL,
    idem_key     text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    name         text        NOT NULL,
    result       bytea       NOT NULL,
    -- The fencing token of the run that stored it: for diagnosis only.
    token        bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, idem_key, fingerprint, name)
);

CREATE INDEX "${table}_steps_expires_at_idx" ON "${schema}"."${table}_steps" (expires_at);
