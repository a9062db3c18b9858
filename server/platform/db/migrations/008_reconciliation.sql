-- Refunds: what the gateway last said when it was not plain (WeChat ABNORMAL, NOT_ENOUGH), and when the money left,
-- by the gateway's clock (the day a refund lands in the gateway's bill).
ALTER TABLE refunds ADD COLUMN gateway_status text;
ALTER TABLE refunds ADD COLUMN succeeded_at timestamptz;

-- Every line of every bill read, normalised to fen (fees in thousandths of a fen: WeChat gives 5 decimals of a yuan).
-- Re-reading a day's bill replaces its lines.
CREATE TABLE bill_entries (
  provider      text NOT NULL CHECK (provider IN ('alipay', 'wechat')),
  bill_date     date NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('payment', 'refund')),
  gateway_no    text NOT NULL,         -- the gateway's trade number (payment) or refund number (refund)
  order_id      text NOT NULL,
  refund_id     text,
  amount_fen    bigint NOT NULL CHECK (amount_fen >= 0),
  fee_millifen  bigint NOT NULL,
  at            timestamptz NOT NULL,
  PRIMARY KEY (provider, bill_date, kind, gateway_no)
);
CREATE INDEX bill_entries_order ON bill_entries (order_id);

-- One result per (scope, day): scope 'alipay', 'wechat' or 'chain:<chainId>:<entryPoint>'; day in China Standard Time.
-- Running a day again replaces its result (runs counts how often it ran).
CREATE TABLE daily_reconciliations (
  scope        text NOT NULL,
  day          date NOT NULL,
  status       text NOT NULL CHECK (status IN ('ties_out', 'differences', 'not_ready', 'failed')),
  figures      jsonb NOT NULL,
  differences  integer NOT NULL,
  detail       text,
  runs         integer NOT NULL DEFAULT 1,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL,
  PRIMARY KEY (scope, day)
);

-- Each difference found, once per (scope, day, kind, reference). A later run that no longer finds it clears it;
-- one that was acted on (resolution: e.g. a missing credit credited) stays, flagged.
CREATE TABLE reconciliation_differences (
  id             bigserial PRIMARY KEY,
  scope          text NOT NULL,
  day            date NOT NULL,
  kind           text NOT NULL,
  reference      text NOT NULL,
  expected       text,
  actual         text,
  cause          text NOT NULL,
  resolution     text,
  first_seen_at  timestamptz NOT NULL DEFAULT now(),
  last_seen_at   timestamptz NOT NULL DEFAULT now(),
  cleared_at     timestamptz,
  CONSTRAINT reconciliation_difference_once UNIQUE (scope, day, kind, reference)
);
CREATE INDEX reconciliation_differences_open ON reconciliation_differences (day) WHERE cleared_at IS NULL;
