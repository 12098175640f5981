-- One row per payment event. No unique constraint is needed for exactly-once: idemkey runs the
-- listener once per record, and its insert commits with the record's settlement.
CREATE TABLE IF NOT EXISTS ledger (
  id bigserial PRIMARY KEY,
  payment text NOT NULL,
  amount bigint NOT NULL,
  currency text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
