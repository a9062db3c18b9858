import type { Database, Queryable } from "../platform/db/database";
import { type Worker, every } from "../platform/every";
import type { Logger } from "../platform/logger";
import type { CallbackReply, CallbackRejectionCode, IncomingCallback, PaymentGateway } from "./gateway";
import { type CreditOutcome, creditPaidOrder } from "./orders";
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

async function storeCallback(db: Queryable, record: AuditRecord): Promise<void> {
  const stored = auditedCallback(record);
  await db.query(
    `INSERT INTO payment_callbacks (provider, order_id, outcome, verified, detail, headers, raw_body, payload)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      record.provider,
      record.orderId ?? null,
      record.outcome,
      record.verified,
      record.detail ?? null,
      JSON.stringify(stored.headers),
      stored.rawBody,
      record.payload === undefined ? null : JSON.stringify(record.payload, (_k, v) => (typeof v === "bigint" ? v.toString() : v)),
    ],
  );
}

/**
 * Handles one payment notification: verify it (signature, timestamp, decryption, merchant ids), then credit
 * the order in one transaction with the order's state change and the audit record. A duplicate of a credited
 * notification is acknowledged as success. Every callback, valid or not, is stored with its outcome.
 */
export async function handlePaymentCallback(db: Database, gateway: PaymentGateway, callback: IncomingCallback): Promise<CallbackResult> {
  const provider = gateway.provider;
  const verification = await gateway.verifyCallback(callback);
  if (!verification.ok) {
    await storeCallback(db, {
      provider,
      outcome: verification.code,
      verified: AUTHENTIC_REJECTIONS.has(verification.code),
      detail: verification.detail,
      callback,
    });
    return reply(gateway, { outcome: verification.code }, verification.detail);
  }
  if (verification.kind === "refund") {
    const r = verification.refund;
    const { outcome, refund } = await applyRefundNotification(db, provider, r);
    const detail = `${r.gatewayStatus} for refund ${r.refundId ?? "(not ours)"}${refund ? `: now ${refund.status}` : ""}`;
    await storeCallback(db, { provider, orderId: r.orderId, outcome, verified: true, detail, callback, payload: r.payload });
    return reply(gateway, { outcome, orderId: r.orderId });
  }

  const n = verification.notification;
  const base = { provider, orderId: n.orderId, verified: true, callback, payload: n.payload };
  if (!n.paid) {
    await storeCallback(db, { ...base, outcome: "not_paid", detail: `gateway status ${n.gatewayStatus}` });
    return reply(gateway, { outcome: "not_paid", orderId: n.orderId });
  }

  // A duplicate of a credited notification (gateways resend, and retry whatever timed out) needs no transaction:
  // paid is final, so one read and the audit row are enough.
  const { rows: current } = await db.query<{ status: string; provider: string }>("SELECT status, provider FROM orders WHERE id = $1", [n.orderId]);
  if (current[0]?.status === "paid" && current[0].provider === provider) {
    await storeCallback(db, { ...base, outcome: "already_credited" });
    return reply(gateway, { outcome: "already_credited", orderId: n.orderId });
  }

  const result = await db.transaction(async (tx) => {
    const { outcome, order } = await creditPaidOrder(tx, {
      orderId: n.orderId,
      provider,
      amountFen: n.amountFen,
      gatewayTradeNo: n.gatewayTradeNo,
      paidAt: n.paidAt,
    });
    if (outcome === "credited" || outcome === "already_credited") await storeCallback(tx, { ...base, outcome });
    const detail =
      outcome === "amount_mismatch" ? `notified ${n.amountFen} fen, order is ${order?.amountFen} fen` : outcome === "unknown_order" ? `no ${provider} order ${n.orderId}` : undefined;
    return { outcome, detail };
  });
  if (result.outcome === "unknown_order" || result.outcome === "amount_mismatch") {
    // stored outside the (rolled-forward, untouched) transaction: nothing was credited
    await storeCallback(db, { ...base, outcome: result.outcome, detail: result.detail });
  }
  return reply(gateway, { outcome: result.outcome, orderId: n.orderId }, result.detail);
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
