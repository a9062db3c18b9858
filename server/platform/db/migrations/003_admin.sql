-- What operators did through the admin API (manual adjustments, …): the action, its parameters and outcome, and
-- who asked — the request id (which finds the request in the logs) and the remote IP. The admin token is shared,
-- so it identifies nobody, and nothing derived from it is stored. Append-only, like the ledger.
CREATE TABLE admin_actions (
  id          bigserial PRIMARY KEY,
  action      text NOT NULL,
  detail      jsonb NOT NULL,
  request_id  text,
  ip          text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION admin_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'admin_actions is append-only';
END $$;
CREATE TRIGGER admin_actions_append_only BEFORE UPDATE OR DELETE ON admin_actions
  FOR EACH ROW EXECUTE FUNCTION admin_actions_append_only();

-- The admin lists page newest first. Orders and refunds are written rarely; top-up entries are a small part of
-- ledger_entries (the partial index costs the sponsorship hot path, whose entries are holds, nothing but the
-- predicate check); settlements are written by the settlement worker, not per request.
CREATE INDEX orders_newest ON orders (created_at DESC, id DESC);
CREATE INDEX refunds_newest ON refunds (created_at DESC, id DESC);
CREATE INDEX ledger_entries_topups ON ledger_entries (created_at) WHERE kind = 'topup';
CREATE INDEX settlements_created ON settlements (created_at) WHERE status = 'settled';
