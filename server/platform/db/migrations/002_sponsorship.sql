-- API keys of the DApps that ask for sponsorship. Only a SHA-256 of the secret is stored; the policy is JSON
-- (server/sponsorship/policy.ts). A revoked key stays for the audit trail.
CREATE TABLE api_keys (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  key_hash    text NOT NULL UNIQUE,
  policy      jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

-- A reservation of the worst-case cost of one UserOperation, made before its paymasterData is signed.
-- One open hold per (chain, sender, nonce): only one operation with that nonce can ever execute, so a repeated
-- request replaces the hold and keeps the larger amount. Ledger references:
--   hold    'hold:<id>:<revision>'   (the first reservation, then each increase)
--   charge  'settle:<settlement id>' and release 'settle:<settlement id>' (the rest) when the chain paid
--   release 'expire:<id>'            when it expired unused
CREATE TABLE holds (
  id              text PRIMARY KEY,
  chain_id        bigint NOT NULL,
  account         text NOT NULL REFERENCES accounts (address),
  nonce           text NOT NULL,        -- uint256, decimal
  api_key_id      text REFERENCES api_keys (id),
  -- open: reserved; settled: charged from a UserOperationEvent; released: expired unused
  status          text NOT NULL CHECK (status IN ('open', 'settled', 'released')),
  amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
  max_cost_wei    numeric(78, 0) NOT NULL,
  revision        integer NOT NULL DEFAULT 1,
  valid_until     timestamptz NOT NULL,
  charged_fen     bigint,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX holds_one_open ON holds (chain_id, account, nonce) WHERE status = 'open';
CREATE INDEX holds_open_by_account ON holds (account) WHERE status = 'open';
CREATE INDEX holds_open_by_expiry ON holds (valid_until) WHERE status = 'open';
CREATE INDEX holds_spend_by_key ON holds (api_key_id, created_at);
CREATE INDEX holds_spend_by_account ON holds (account, created_at);

-- Every UserOperation we signed, with the quote locked for it. Replaced variants stay: any of them may land.
CREATE TABLE sponsored_operations (
  user_op_hash    text PRIMARY KEY,
  hold_id         text NOT NULL REFERENCES holds (id),
  fen_per_native  bigint NOT NULL,
  markup_bps      integer NOT NULL,
  max_charge_fen  bigint NOT NULL,
  valid_until     timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sponsored_operations_hold ON sponsored_operations (hold_id);

-- UserOperationEvents our paymaster paid for, as the settlement worker read them. A reorg that drops the block
-- marks the row 'reorged' and undoes its ledger entries ('unsettle:<id>'); the operation settles again when it
-- reappears. hold_id NULL: paid by our paymaster but unknown to us (alerted).
CREATE TABLE settlements (
  id                  bigserial PRIMARY KEY,
  chain_id            bigint NOT NULL,
  user_op_hash        text NOT NULL,
  hold_id             text REFERENCES holds (id),
  account             text NOT NULL,
  nonce               text NOT NULL,
  success             boolean NOT NULL,
  actual_gas_cost_wei numeric(78, 0) NOT NULL,
  actual_gas_used     numeric(78, 0) NOT NULL,
  charged_fen         bigint NOT NULL DEFAULT 0,
  released_fen        bigint NOT NULL DEFAULT 0,
  block_number        bigint NOT NULL,
  block_hash          text NOT NULL,
  transaction_hash    text NOT NULL,
  log_index           integer NOT NULL,
  status              text NOT NULL CHECK (status IN ('settled', 'reorged')),
  created_at          timestamptz NOT NULL DEFAULT now(),
  reorged_at          timestamptz
);
CREATE UNIQUE INDEX settlements_once ON settlements (chain_id, user_op_hash) WHERE status = 'settled';
CREATE INDEX settlements_by_block ON settlements (chain_id, block_number) WHERE status = 'settled';

-- How far the settlement worker has read each chain, and the hash of that block (reorg detection).
CREATE TABLE chain_cursors (
  chain_id      bigint PRIMARY KEY,
  block_number  bigint NOT NULL,
  block_hash    text NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now()
);
