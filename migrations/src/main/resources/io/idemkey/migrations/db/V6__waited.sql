-- Set on an in-progress key when a request waits for it (on any node): only then does its
-- completion or release notify the nodes, so a key that no one waited for costs no notification.
ALTER TABLE "${schema}"."${table}" ADD COLUMN waited boolean;
