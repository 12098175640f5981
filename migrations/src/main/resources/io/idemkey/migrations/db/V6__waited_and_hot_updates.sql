-- Set on an in-progress key when a request waits for it (on any node): only then does its
-- completion or release notify the nodes, so a key that no one waited for costs no notification.
ALTER TABLE "${schema}"."${table}" ADD COLUMN waited boolean;

-- The purge finds its candidates by creation (every expired row was created at least a ttl ago),
-- so that no index covers a column that a completion, a renewal or a mark changes: those updates
-- are then HOT (heap-only), writing no index entry and leaving none to vacuum.
CREATE INDEX "${table}_created_at_idx" ON "${schema}"."${table}" (created_at);
DROP INDEX "${schema}"."${table}_expires_at_idx";
