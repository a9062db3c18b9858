import type { Database, Queryable } from "../platform/db/database";
import { GroupCommitter } from "../platform/db/groupCommit";
import { type Worker, every } from "../platform/every";
import type { Logger } from "../platform/logger";
import type { CallbackReply, CallbackRejectionCode, IncomingCallback, PaymentGateway, Provider, VerifiedPaymentNotification } from "./gateway";
import { type CreditOutcome, creditPaidOrders } from "./orders";
import { type RefundNotificationOutcome, applyRefundNotification } from "./refunds";

export type CallbackOutcome = Exclude<CreditOutcome, "unknown_order" | "amount_mismatch"> | CallbackRejectionCode | RefundNotificationOutcome;

export type CallbackResult = { outcome: CallbackOutcome; orderId?: string; reply: CallbackReply };

/** Rejections after which the signature had checked out (the callback is authentic, its content is not acceptable). */
const AUTHENTIC_REJECTIONS = new Set<CallbackRejectionCode>(["merchant_mismatch", "unknown_order", "amount_mismatch", "not_paid", "not_a_payment"]);

/**
 * Outcomes we acknowledge as success so the gateway stops retrying: the notification was authentic and there is
 * nothing more it could ever make us do. Everything else is answered with the gateway's failure reply.
 */
const ACKNOWLEDGED = new Set<CallbackOutcome>(["credited", "already_credited", "not_paid", "not_a_payment", "refund_updated", "refund_already_final", "refund_unknown"]);
/** Refund notifications: authentic, acknowledged, never a credit. */
const REFUND_OUTCOMES = new Set<CallbackOutcome>(["refund_updated", "refund_already_final", "refund_unknown"]);

type AuditRecord = {
  provider: string;
  orderId?: string;
  outcome: CallbackOutcome;
  verified: boolean;
  detail?: string;
  callback: IncomingCallback;
  payload?: unknown;
};

/** Of a callback whose signature did not verify (anyone can send one), only this much body is kept... */
export const UNVERIFIED_BODY_BYTES = 4_096;
/** ...and these headers, each cut to 512 characters: what is needed to see why it failed. */
const UNVERIFIED_HEADERS = /^(content-type|content-length|user-agent|x-forwarded-for|wechatpay-[a-z-]+)$/;

function auditedCallback(record: AuditRecord): { headers: unknown; rawBody: string } {
  if (record.verified) return { headers: record.callback.headers, rawBody: record.callback.rawBody };
  const headers = Object.fromEntries(
    Object.entries(record.callback.headers)
      .filter(([name]) => UNVERIFIED_HEADERS.test(name.toLowerCase()))
      .map(([name, value]) => [name, String(value).slice(0, 512)]),
  );
  const body = Buffer.from(record.callback.rawBody, "utf8");
  const rawBody = body.length <= UNVERIFIED_BODY_BYTES ? record.callback.rawBody : `${body.subarray(0, UNVERIFIED_BODY_BYTES).toString("utf8")}…[${body.length} bytes, truncated]`;
  return { headers, rawBody };
}

/** Whether the callback's signature checked out (authentic callbacks are kept in full and for good). */
export function isAuthentic(outcome: CallbackOutcome): boolean {
  return (
    outcome === "credited" ||
    outcome === "already_credited" ||
    outcome === "not_paid" ||
    REFUND_OUTCOMES.has(outcome) ||
    AUTHENTIC_REJECTIONS.has(outcome as CallbackRejectionCode)
  );
}

/**
 * Deletes callbacks whose signature did not verify, older than `retentionHours`: forged or broken requests are
 * kept long enough to investigate, not forever. Returns how many were deleted.
 */
export async function purgeUnverifiedCallbacks(db: Queryable, p: { retentionHours: number; now?: Date; limit?: number }): Promise<number> {
  const cutoff = new Date((p.now ?? new Date()).getTime() - p.retentionHours * 3_600_000).toISOString();
  const { rowCount } = await db.query(
    "DELETE FROM payment_callbacks WHERE id IN (SELECT id FROM payment_callbacks WHERE NOT verified AND received_at < $1 ORDER BY received_at LIMIT $2)",
    [cutoff, p.limit ?? 10_000],
  );
  return rowCount;
}

/** Stores callbacks with their outcomes, in one statement however many. */
async function storeCallbacks(db: Queryable, records: readonly AuditRecord[]): Promise<void> {
  const stored = records.map(auditedCallback);
  await db.query(
    `INSERT INTO payment_callbacks (provider, order_id, outcome, verified, detail, headers, raw_body, payload)
     SELECT provider, order_id, outcome, verified, detail, headers::jsonb, raw_body, payload::jsonb
       FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::text[], $7::text[], $8::text[])
         AS t(provider, order_id, outcome, verified, detail, headers, raw_body, payload)`,
    [
      records.map((r) => r.provider),
      records.map((r) => r.orderId ?? null),
      records.map((r) => r.outcome),
      records.map((r) => r.verified),
      records.map((r) => r.detail ?? null),
      stored.map((s) => JSON.stringify(s.headers)),
      stored.map((s) => s.rawBody),
      records.map((r) => (r.payload === undefined ? null : payloadJson(r.payload))),
    ],
  );
}

/** A stored payload's JSON, bigints as decimal strings (a replacer slows every stringify: only when there is one). */
function payloadJson(payload: unknown): string {
  try {
    return JSON.stringify(payload);
  } catch {
    return JSON.stringify(payload, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  }
}

/** A verified payment notification on its way to be credited. */
type PaidNotification = { provider: Provider; notification: VerifiedPaymentNotification; callback: IncomingCallback };
type CreditedNotification = { outcome: CreditOutcome; detail?: string };

/**
 * Credits a batch of paid notifications in the transaction `tx`: every order locked, each notification decided as
 * creditPaidOrder decides it (a duplicate is `already_credited`), then the paid orders, their ledger entries and
 * every notification's audit row written with a few array statements.
 */
async function creditNotifications(tx: Queryable, batch: readonly PaidNotification[]): Promise<CreditedNotification[]> {
  const credits = await creditPaidOrders(
    tx,
    batch.map(({ provider, notification: n }) => ({ orderId: n.orderId, provider, amountFen: n.amountFen, gatewayTradeNo: n.gatewayTradeNo, paidAt: n.paidAt })),
  );
  const results = credits.map(({ outcome, order }, i): CreditedNotification => {
    const { provider, notification: n } = batch[i]!;
    if (outcome === "amount_mismatch") return { outcome, detail: `notified ${n.amountFen} fen, order is ${order?.amountFen} fen` };
    if (outcome === "unknown_order") return { outcome, detail: `no ${provider} order ${n.orderId}` };
    return { outcome };
  });
  await storeCallbacks(
    tx,
    batch.map(({ provider, notification: n, callback }, i) => ({ provider, orderId: n.orderId, verified: true, callback, payload: n.payload, ...results[i]! })),
  );
  return results;
}

export type CallbackHandler = {
  /**
   * Handles one callback: verify it (signature, timestamp, decryption, merchant ids), then credit the order in one
   * transaction with the order's state change and the audit record — group-committed with the callbacks arriving
   * meanwhile. A duplicate of a credited notification is acknowledged as success. Every callback, valid or not, is
   * stored with its outcome. A database outage rejects (DatabaseUnavailableError): nothing is acknowledged then.
   */
  handle(gateway: PaymentGateway, callback: IncomingCallback): Promise<CallbackResult>;
  /** Group-commit figures of the credits: items / batches is the mean batch. */
  stats(): { batches: number; items: number; queued: number; running: number };
};

/** The callback handling of one service: one group committer for the credits on `db`. */
export function createCallbackHandler(db: Database, options: { maxBatch?: number; maxConcurrent?: number } = {}): CallbackHandler {
  // No timer: a lone callback commits at once in a batch of its own; under load, those arriving while a transaction
  // runs share the next one. Duplicates go the same way: their share of a batch costs less than a read and an audit
  // row committed on their own. One transaction at a time, on PostgreSQL too: what limits callbacks is this process's
  // CPU, not the disk, and a second transaction in flight halves the batches — more statements per callback — for
  // fewer credits a second (npm run bench:callbacks: 2 in flight ~1,350–1,550/s with ~12 callbacks per transaction,
  // 3 ~900/s; 1 ~1,600/s with ~31).
  const credits = new GroupCommitter<PaidNotification, CreditedNotification>((batch) => db.transaction((tx) => creditNotifications(tx, batch)), {
    maxBatch: options.maxBatch ?? 256,
    maxConcurrent: options.maxConcurrent ?? 1,
  });

  async function handle(gateway: PaymentGateway, callback: IncomingCallback): Promise<CallbackResult> {
    const provider = gateway.provider;
    const verification = await gateway.verifyCallback(callback);
    if (!verification.ok) {
      const verified = AUTHENTIC_REJECTIONS.has(verification.code);
      await storeCallbacks(db, [{ provider, outcome: verification.code, verified, detail: verification.detail, callback }]);
      return reply(gateway, { outcome: verification.code }, verification.detail);
    }
    if (verification.kind === "refund") {
      const r = verification.refund;
      const { outcome, refund } = await applyRefundNotification(db, provider, r);
      const detail = `${r.gatewayStatus} for refund ${r.refundId ?? "(not ours)"}${refund ? `: now ${refund.status}` : ""}`;
      await storeCallbacks(db, [{ provider, orderId: r.orderId, outcome, verified: true, detail, callback, payload: r.payload }]);
      return reply(gateway, { outcome, orderId: r.orderId });
    }
    const n = verification.notification;
    if (!n.paid) {
      const detail = `gateway status ${n.gatewayStatus}`;
      await storeCallbacks(db, [{ provider, orderId: n.orderId, outcome: "not_paid", verified: true, detail, callback, payload: n.payload }]);
      return reply(gateway, { outcome: "not_paid", orderId: n.orderId });
    }
    const { outcome, detail } = await credits.submit({ provider, notification: n, callback });
    return reply(gateway, { outcome, orderId: n.orderId }, detail);
  }

  return { handle, stats: () => credits.stats() };
}

function reply(gateway: PaymentGateway, result: { outcome: CallbackOutcome; orderId?: string }, detail?: string): CallbackResult {
  const acknowledged = ACKNOWLEDGED.has(result.outcome);
  return { ...result, reply: acknowledged ? gateway.successReply() : gateway.failureReply(detail ?? result.outcome) };
}

/** Advisory lock of the unverified-callback purge ("fpcbpurg"), and how often it runs. */
const CALLBACK_PURGE_LOCK = 0x6670636270757267n;
const CALLBACK_PURGE_INTERVAL_MS = 3_600_000;

/** Every hour, deletes unverified callbacks past their retention; one instance at a time (an advisory lock). */
export function startCallbackPurge(p: { db: Database; log: Logger; retentionHours: number }): Worker {
  return every(CALLBACK_PURGE_INTERVAL_MS, async () => {
    try {
      const run = await p.db.withAdvisoryLock(CALLBACK_PURGE_LOCK, () => purgeUnverifiedCallbacks(p.db, { retentionHours: p.retentionHours }));
      if (run.acquired && run.result > 0) p.log.info({ deleted: run.result }, "unverified callbacks past their retention deleted");
    } catch (error) {
      p.log.warn({ err: (error as Error).message }, "purging unverified callbacks failed; retrying later");
    }
  });
}
