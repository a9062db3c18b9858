import { randomBytes } from "node:crypto";
import { type Database, type Queryable, sqlState } from "../platform/db/database";
import { debitRefund, lockBalance, reverseRefund } from "../ledger/ledger";
import { NotFoundError, PaymentConflictError, PaymentInputError } from "./errors";
import type { PaymentGateway, Provider, RefundState, VerifiedRefundNotification } from "./gateway";
import { addRefundedFen } from "./orders";

export type RefundStatus = "requested" | "succeeded" | "failed";

export type Refund = {
  id: string;
  orderId: string;
  account: string;
  amountFen: bigint;
  status: RefundStatus;
  gatewayRefundNo: string | null;
  failureReason: string | null;
  /** The gateway's word when it is worth showing: ABNORMAL (WeChat: the payer's bank refused), NOT_ENOUGH (merchant balance short). */
  gatewayStatus: string | null;
  /** When the money left, by the gateway's clock. */
  succeededAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
};

/** A refunds row as read with REFUND_COLUMNS (the admin API reads refunds through these too). */
export type RefundRow = {
  id: string;
  order_id: string;
  account: string;
  amount_fen: bigint;
  status: RefundStatus;
  gateway_refund_no: string | null;
  failure_reason: string | null;
  gateway_status: string | null;
  succeeded_at: Date | null;
  created_at: Date;
  updated_at: Date;
};

export const REFUND_COLUMNS = "id, order_id, account, amount_fen, status, gateway_refund_no, failure_reason, gateway_status, succeeded_at, created_at, updated_at";

export const toRefund = (r: RefundRow): Refund => ({
  id: r.id,
  orderId: r.order_id,
  account: r.account,
  amountFen: r.amount_fen,
  status: r.status,
  gatewayRefundNo: r.gateway_refund_no,
  failureReason: r.failure_reason,
  gatewayStatus: r.gateway_status,
  succeededAt: r.succeeded_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export type RefundsDeps = { db: Database; gateways: ReadonlyMap<Provider, PaymentGateway> };

export type RequestRefundInput = { orderId: string; amountFen?: bigint; idempotencyKey?: string; reason?: string };

export async function getRefund(db: Queryable, id: string): Promise<Refund> {
  const { rows } = await db.query<RefundRow>(`SELECT ${REFUND_COLUMNS} FROM refunds WHERE id = $1`, [id]);
  if (!rows[0]) throw new NotFoundError(`no refund ${id}`);
  return toRefund(rows[0]);
}

/**
 * Refunds unspent quota of a paid order. The ledger debit and the refund record commit first, so the funds
 * cannot be spent while the gateway works; then the gateway is asked. A refund that is still pending (or whose
 * gateway call failed) is finished by the reconciler; one the gateway refuses gives the quota back.
 * The amount defaults to all that can be refunded: the order's unrefunded part, capped by the available balance.
 */
export async function requestRefund(deps: RefundsDeps, input: RequestRefundInput): Promise<Refund> {
  if (input.amountFen !== undefined && input.amountFen <= 0n) throw new PaymentInputError("amountFen must be positive");
  const refund = await recordRefundRequest(deps.db, input).catch((error: unknown) => {
    // the same idempotency key arriving twice at once: the loser finds the winner's refund
    if (input.idempotencyKey && sqlState(error).code === "23505") return recordRefundRequest(deps.db, input);
    throw error;
  });
  if (!refund.fresh || refund.refund.status !== "requested") return refund.refund;
  return submitRefund(deps, refund.refund, input.reason).catch(() => refund.refund);
}

function recordRefundRequest(db: Database, input: RequestRefundInput): Promise<{ refund: Refund; fresh: boolean }> {
  return db.transaction(async (tx) => {
    if (input.idempotencyKey) {
      const { rows } = await tx.query<RefundRow>(`SELECT ${REFUND_COLUMNS} FROM refunds WHERE idempotency_key = $1`, [input.idempotencyKey]);
      const existing = rows[0];
      if (existing) {
        if (existing.order_id !== input.orderId || (input.amountFen !== undefined && existing.amount_fen !== input.amountFen)) {
          throw new PaymentConflictError("idempotencyKey was already used for another refund", { refundId: existing.id });
        }
        return { refund: toRefund(existing), fresh: false };
      }
    }
    const { rows } = await tx.query<{ account: string; status: string; amount_fen: bigint; refunded_fen: bigint }>(
      "SELECT account, status, amount_fen, refunded_fen FROM orders WHERE id = $1 FOR UPDATE",
      [input.orderId],
    );
    const order = rows[0];
    if (!order) throw new NotFoundError(`no order ${input.orderId}`);
    if (order.status !== "paid") throw new PaymentConflictError(`order ${input.orderId} is ${order.status}, not paid: there is nothing to refund`);
    const refundableFen = order.amount_fen - order.refunded_fen;
    const balance = await lockBalance(tx, order.account);
    const amountFen = input.amountFen ?? (refundableFen < balance.availableFen ? refundableFen : balance.availableFen);
    const details = { refundableFen: refundableFen.toString(), availableFen: balance.availableFen.toString(), requestedFen: amountFen.toString() };
    if (amountFen <= 0n) throw new PaymentConflictError("nothing left to refund: the order is fully refunded or its quota is spent", details);
    if (amountFen > refundableFen) {
      throw new PaymentConflictError(`refund of ${amountFen} fen exceeds the ${refundableFen} fen of this order not yet refunded`, details);
    }
    if (amountFen > balance.availableFen) {
      throw new PaymentConflictError(`refund of ${amountFen} fen exceeds the account's unspent (available) balance of ${balance.availableFen} fen`, details);
    }
    const id = `rf${randomBytes(12).toString("hex")}`;
    const inserted = await tx.query<RefundRow>(
      `INSERT INTO refunds (id, order_id, account, amount_fen, status, idempotency_key) VALUES ($1, $2, $3, $4, 'requested', $5)
       RETURNING ${REFUND_COLUMNS}`,
      [id, input.orderId, order.account, amountFen, input.idempotencyKey ?? null],
    );
    await addRefundedFen(tx, input.orderId, amountFen);
    await debitRefund(tx, { account: order.account, refundId: id, amountFen });
    return { refund: toRefund(inserted.rows[0]!), fresh: true };
  });
}

async function providerOf(db: Queryable, orderId: string): Promise<{ provider: Provider; totalFen: bigint }> {
  const { rows } = await db.query<{ provider: Provider; amount_fen: bigint }>("SELECT provider, amount_fen FROM orders WHERE id = $1", [orderId]);
  return { provider: rows[0]!.provider, totalFen: rows[0]!.amount_fen };
}

/** Asks the gateway to refund (again: the refund id makes it idempotent there) and records what it says. */
export async function submitRefund(deps: RefundsDeps, refund: Refund, reason?: string): Promise<Refund> {
  const { provider, totalFen } = await providerOf(deps.db, refund.orderId);
  const gateway = deps.gateways.get(provider);
  if (!gateway) return refund;
  const state = await gateway.refund({ orderId: refund.orderId, refundId: refund.id, amountFen: refund.amountFen, totalFen, reason });
  return recordRefundState(deps.db, refund, state);
}

/** Polls the gateway for a requested refund and records the result (re-submitting one the gateway never saw). */
export async function settleRefund(deps: RefundsDeps, refund: Refund): Promise<Refund> {
  const { provider } = await providerOf(deps.db, refund.orderId);
  const gateway = deps.gateways.get(provider);
  if (!gateway) return refund;
  const state = await gateway.queryRefund(refund.orderId, refund.id);
  if (state.status === "not_found") return submitRefund(deps, refund);
  return recordRefundState(deps.db, refund, state);
}

/** Records what the gateway said of a requested refund: final states once (a refund already final is left alone). */
async function recordRefundState(db: Database, refund: Refund, state: RefundState): Promise<Refund> {
  if (state.status === "succeeded") {
    const { rows } = await db.query<RefundRow>(
      `UPDATE refunds SET status = 'succeeded', gateway_refund_no = COALESCE($2, gateway_refund_no), succeeded_at = COALESCE($3, now()),
              gateway_status = NULL, updated_at = now()
        WHERE id = $1 AND status = 'requested' RETURNING ${REFUND_COLUMNS}`,
      [refund.id, state.gatewayRefundNo ?? null, state.succeededAt ?? null],
    );
    return rows[0] ? toRefund(rows[0]) : getRefund(db, refund.id);
  }
  if (state.status === "failed") {
    return db.transaction(async (tx) => {
      const { rows } = await tx.query<RefundRow>(
        `UPDATE refunds SET status = 'failed', failure_reason = $2, updated_at = now()
          WHERE id = $1 AND status = 'requested' RETURNING ${REFUND_COLUMNS}`,
        [refund.id, state.reason],
      );
      if (!rows[0]) return getRefund(tx, refund.id);
      await addRefundedFen(tx, refund.orderId, -refund.amountFen);
      await reverseRefund(tx, { account: refund.account, refundId: refund.id, amountFen: refund.amountFen });
      return toRefund(rows[0]);
    });
  }
  if (state.status === "pending" && (state.gatewayRefundNo || state.gatewayStatus !== undefined)) {
    await db.query(
      `UPDATE refunds SET gateway_refund_no = COALESCE($2, gateway_refund_no), gateway_status = $3, updated_at = now()
        WHERE id = $1 AND status = 'requested'`,
      [refund.id, state.gatewayRefundNo ?? null, state.gatewayStatus ?? null],
    );
  }
  return getRefund(db, refund.id);
}

export type RefundNotificationOutcome = "refund_updated" | "refund_already_final" | "refund_unknown";

/**
 * Applies a verified refund notification at once (polling would find the same later): a refund of ours becomes
 * what the gateway says. A notification of a refund we do not have (made in the merchant console, or for another
 * order) changes nothing and is kept for the audit; the daily reconciliation lists it.
 */
export async function applyRefundNotification(db: Database, provider: Provider, n: VerifiedRefundNotification): Promise<{ outcome: RefundNotificationOutcome; refund?: Refund }> {
  if (!n.refundId) return { outcome: "refund_unknown" };
  const { rows } = await db.query<RefundRow & { provider: Provider }>(
    `SELECT ${REFUND_COLUMNS.split(", ").map((c) => `r.${c}`).join(", ")}, o.provider FROM refunds r JOIN orders o ON o.id = r.order_id WHERE r.id = $1`,
    [n.refundId],
  );
  const row = rows[0];
  if (!row || row.order_id !== n.orderId || row.provider !== provider) return { outcome: "refund_unknown" };
  const refund = toRefund(row);
  if (refund.status !== "requested") return { outcome: "refund_already_final", refund };
  return { outcome: "refund_updated", refund: await recordRefundState(db, refund, n.state) };
}

/** Refunds the gateway has not confirmed yet, oldest first. */
export async function openRefunds(db: Queryable, olderThan: Date, limit: number): Promise<Refund[]> {
  const { rows } = await db.query<RefundRow>(
    `SELECT ${REFUND_COLUMNS} FROM refunds WHERE status = 'requested' AND updated_at < $1 ORDER BY created_at LIMIT $2`,
    [olderThan, limit],
  );
  return rows.map(toRefund);
}
