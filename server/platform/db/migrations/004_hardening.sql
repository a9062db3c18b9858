-- Holds remember the client IP that asked for them: open holds are capped per (sender, API key) and per
-- (sender, client IP), so one caller cannot take every hold a sender may have. A reorg can find a newer open hold
-- for the nonce of a settlement it undoes; the old hold is then merged into it ('merged', merged_into), never
-- reopened beside it.
ALTER TABLE holds ADD COLUMN client_ip text;
ALTER TABLE holds ADD COLUMN merged_into text REFERENCES holds (id);
ALTER TABLE holds DROP CONSTRAINT holds_status_check;
ALTER TABLE holds ADD CONSTRAINT holds_status_check CHECK (status IN ('open', 'settled', 'released', 'merged'));
CREATE INDEX holds_open_by_chain_expiry ON holds (chain_id, valid_until) WHERE status = 'open';
DROP INDEX holds_open_by_expiry;

-- The timestamp of the cursor's block: holds are released only once settlement has read confirmed blocks whose
-- time is past their validUntil (chain time, not the server's clock). NULL until the next pass stores it.
ALTER TABLE chain_cursors ADD COLUMN block_timestamp timestamptz;

-- What a settlement could not charge: an operation that landed after its hold was gone, or whose cost rose above
-- its hold after a reorg, is charged from the account's available quota; what the account did not have is the
-- shortfall (paid by the paymaster's deposit, alerted, counted in fiat_paymaster_settlement_shortfall_fen_total).
ALTER TABLE settlements ADD COLUMN shortfall_fen bigint NOT NULL DEFAULT 0 CHECK (shortfall_fen >= 0);

-- Events or reorg undos that failed for a reason of their own (not an outage): recorded and alerted, and the
-- cursor goes on. Each pass retries the open ones; resolved_at is set when one succeeds (or its block is gone).
CREATE TABLE settlement_failures (
  id             bigserial PRIMARY KEY,
  chain_id       bigint NOT NULL,
  kind           text NOT NULL CHECK (kind IN ('settle', 'undo')),
  -- settle: the event (userOpHash and the log, as JSON); undo: the settlement to undo
  user_op_hash   text,
  settlement_id  bigint,
  event          jsonb,
  error          text NOT NULL,
  attempts       integer NOT NULL DEFAULT 1,
  resolution     text,
  resolved_at    timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX settlement_failures_once ON settlement_failures (chain_id, kind, COALESCE(user_op_hash, ''), COALESCE(settlement_id, 0))
  WHERE resolved_at IS NULL;

-- Callbacks whose signature did not verify are kept for a retention period only (CALLBACK_RETENTION_HOURS).
CREATE INDEX payment_callbacks_unverified ON payment_callbacks (received_at) WHERE NOT verified;
