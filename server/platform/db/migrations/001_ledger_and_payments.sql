-- Balances: cached per account, always recomputable from ledger_entries (npm run ledger:check).
-- The CHECKs make a negative balance impossible whatever the application does.
CREATE TABLE accounts (
  address        text PRIMARY KEY CHECK (address ~ '^0x[0-9a-f]{40}$'),
  available_fen  bigint NOT NULL DEFAULT 0 CONSTRAINT available_not_negative CHECK (available_fen >= 0),
  held_fen       bigint NOT NULL DEFAULT 0 CONSTRAINT held_not_negative CHECK (held_fen >= 0),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Append-only: every balance change is one row. (kind, reference) is unique, so repeating a write is a no-op.
--   topup   +available             (reference: order id)
--   hold    -available +held       (reference: reservation id)
--   release +available -held       (reference: reservation id)
--   charge  -held                  (reference: reservation id)
--   refund  -available             (reference: refund id); +available if the gateway refuses (reversal:<refund id>)
--   adjust  ±available             (reference: adjustment id; memo: the reason)
CREATE TABLE ledger_entries (
  id                   bigserial PRIMARY KEY,
  account              text NOT NULL REFERENCES accounts (address),
  kind                 text NOT NULL CHECK (kind IN ('topup', 'hold', 'release', 'charge', 'refund', 'adjust')),
  available_delta_fen  bigint NOT NULL,
  held_delta_fen       bigint NOT NULL,
  reference            text NOT NULL,
  memo                 text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ledger_entry_once UNIQUE (kind, reference)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account, id);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger_entries is append-only';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- Top-up orders. id is our out_trade_no at the gateway.
CREATE TABLE orders (
  id                text PRIMARY KEY,
  account           text NOT NULL CHECK (account ~ '^0x[0-9a-f]{40}$'),
  provider          text NOT NULL CHECK (provider IN ('alipay', 'wechat')),
  amount_fen        bigint NOT NULL CHECK (amount_fen > 0),
  -- created: stored, gateway not yet asked; pending: awaiting payment; paid: credited; closed: expired or cancelled
  status            text NOT NULL CHECK (status IN ('created', 'pending', 'paid', 'closed')),
  idempotency_key   text UNIQUE,
  qr_code           text,
  pay_url           text,
  gateway_trade_no  text,
  expires_at        timestamptz NOT NULL,
  paid_at           timestamptz,
  closed_at         timestamptz,
  refunded_fen      bigint NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT refunds_within_paid CHECK (refunded_fen >= 0 AND refunded_fen <= amount_fen)
);
CREATE INDEX orders_open ON orders (created_at) WHERE status IN ('created', 'pending');
CREATE INDEX orders_account ON orders (account, created_at DESC);

-- Every callback that reached us, valid or not, with what we made of it.
CREATE TABLE payment_callbacks (
  id           bigserial PRIMARY KEY,
  provider     text NOT NULL,
  order_id     text,
  outcome      text NOT NULL,   -- credited | already_credited | a rejection code (bad_signature, amount_mismatch, ...)
  verified     boolean NOT NULL, -- the signature (and decryption) checked out
  detail       text,
  headers      jsonb NOT NULL,
  raw_body     text NOT NULL,
  payload      jsonb,
  received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_callbacks_order ON payment_callbacks (order_id);

-- Refunds of unspent top-up quota. The ledger debit happens when the row is created; the gateway refund after.
CREATE TABLE refunds (
  id                 text PRIMARY KEY,
  order_id           text NOT NULL REFERENCES orders (id),
  account            text NOT NULL,
  amount_fen         bigint NOT NULL CHECK (amount_fen > 0),
  -- requested: debited, gateway not yet confirmed; succeeded; failed: gateway refused (quota given back)
  status             text NOT NULL CHECK (status IN ('requested', 'succeeded', 'failed')),
  idempotency_key    text UNIQUE,
  gateway_refund_no  text,
  failure_reason     text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_open ON refunds (created_at) WHERE status = 'requested';

-- What the reconciliation worker did, for the operators.
CREATE TABLE reconciliation_runs (
  id           bigserial PRIMARY KEY,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL,
  checked      integer NOT NULL,
  credited     integer NOT NULL,
  closed       integer NOT NULL,
  refunds_settled integer NOT NULL,
  errors       integer NOT NULL,
  detail       jsonb
);
