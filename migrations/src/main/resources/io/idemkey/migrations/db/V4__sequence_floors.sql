-- Sequence keys (SPEC §13): per scope, the floor, the highest key whose completed record the purge
-- has deleted. One row per scope that used sequence keys, whatever the number of keys it sent;
-- the scope is stored as the keys table stores it (a digest for long scopes).
CREATE TABLE "${schema}"."${table}_floors" (
    scope  text    PRIMARY KEY,
    floor  bigint  NOT NULL CHECK (floor >= 0)
);
