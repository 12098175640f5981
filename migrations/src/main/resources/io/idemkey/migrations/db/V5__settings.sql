-- What every node on this table must agree on, one row (SPEC §13): keys, 'opaque' or 'sequence'
-- (idempotency.keys). Written by the first node that starts on the table (an upgraded table: from
-- the keys it holds); a node whose keys differ refuses to start. Emptying this table together
-- with the keys, steps and floors tables lets the next node choose again.
CREATE TABLE "${schema}"."${table}_settings" (
    only_row    boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    keys        text        NOT NULL CHECK (keys IN ('opaque', 'sequence')),
    recorded_at timestamptz NOT NULL DEFAULT statement_timestamp()
);
