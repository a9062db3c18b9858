/**
 * The reconciliation worker: catches up with what notifications missed. For orders still open after a delay it
 * asks the gateway: a paid trade is credited (exactly once, like a callback), an expired unpaid one is closed at
 * the gateway and then queried once more (a payment that raced the close is credited, not lost). Refunds the
 * gateway has not confirmed are polled to completion. One instance at a time runs it (advisory lock).
 */
import type { Logger } from "../platform/logger";
import type { Database } from "../platform/db/database";
import { GatewayError, type PaymentGateway, type Provider } from "./gateway";
import { creditPaidOrder, markOrderClosed, openOrdersBefore, type Order } from "./orders";
import { openRefunds, settleRefund } from "./refunds";

/** Advisory lock key of the reconciler ("fprecncl"). */
export const RECONCILE_LOCK = 0x6670726563636e6cn;

export type ReconcileOptions = {
  /** Orders younger than this are left to their notification. */
  afterMs: number;
  /** How many orders and refunds one run looks at. */
  batchSize?: number;
  now?: () => Date;
  /** Stops the pass between orders and refunds (shutdown): one already at its gateway finishes first. */
  signal?: AbortSignal;
};

export type ReconcileReport = {
  checked: number;
  credited: number;
  closed: number;
  refundsSettled: number;
  errors: { orderId?: string; refundId?: string; message: string }[];
};

export type ReconcileDeps = { db: Database; gateways: ReadonlyMap<Provider, PaymentGateway>; log?: Logger };

async function reconcileOrder(deps: ReconcileDeps, gateway: PaymentGateway, order: Order, now: Date): Promise<"credited" | "closed" | "open"> {
  let trade = await gateway.queryTrade(order.id);
  const expired = order.expiresAt.getTime() <= now.getTime();
  if (trade.status === "pending" && expired) {
    try {
      await gateway.closeTrade(order.id);
    } catch (error) {
      // a business refusal ("already paid") means the payment raced the close: the query below settles it
      if (!(error instanceof GatewayError && error.gatewayCode !== undefined)) throw error;
    }
    trade = await gateway.queryTrade(order.id);
  }
  if (trade.status === "paid") {
    const { outcome } = await deps.db.transaction((tx) =>
      creditPaidOrder(tx, { orderId: order.id, provider: order.provider, amountFen: trade.amountFen, gatewayTradeNo: trade.gatewayTradeNo, paidAt: trade.paidAt }),
    );
    if (outcome === "amount_mismatch") throw new Error(`gateway reports ${trade.amountFen} fen paid for a ${order.amountFen} fen order`);
    return outcome === "credited" ? "credited" : "open";
  }
  if (trade.status === "closed" || (trade.status === "not_found" && expired)) {
    return (await markOrderClosed(deps.db, order.id)) ? "closed" : "open";
  }
  return "open";
}

/** One pass over open orders and refunds. Errors are collected per item; one bad trade never stops the rest. */
export async function reconcileOnce(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport> {
  const now = options.now?.() ?? new Date();
  const before = new Date(now.getTime() - options.afterMs);
  const limit = options.batchSize ?? 100;
  const report: ReconcileReport = { checked: 0, credited: 0, closed: 0, refundsSettled: 0, errors: [] };

  for (const order of await openOrdersBefore(deps.db, before, limit)) {
    if (options.signal?.aborted) return report;
    const gateway = deps.gateways.get(order.provider);
    if (!gateway) continue;
    report.checked++;
    try {
      const result = await reconcileOrder(deps, gateway, order, now);
      if (result === "credited") report.credited++;
      if (result === "closed") report.closed++;
      if (result !== "open") deps.log?.info({ orderId: order.id, provider: order.provider }, `reconcile.order_${result}`);
    } catch (error) {
      report.errors.push({ orderId: order.id, message: (error as Error).message });
    }
  }
  for (const refund of await openRefunds(deps.db, before, limit)) {
    if (options.signal?.aborted) return report;
    try {
      const settled = await settleRefund(deps, refund);
      if (settled.status !== "requested") report.refundsSettled++;
    } catch (error) {
      report.errors.push({ refundId: refund.id, message: (error as Error).message });
    }
  }
  return report;
}

/** Runs reconcileOnce under the advisory lock and records the run; `undefined` if another instance holds it. */
export async function reconcileLocked(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport | undefined> {
  const startedAt = new Date();
  const run = await deps.db.withAdvisoryLock(RECONCILE_LOCK, () => reconcileOnce(deps, options));
  if (!run.acquired) return undefined;
  const r = run.result;
  if (r.checked > 0 || r.refundsSettled > 0 || r.errors.length > 0) {
    await deps.db.query(
      `INSERT INTO reconciliation_runs (started_at, finished_at, checked, credited, closed, refunds_settled, errors, detail)
       VALUES ($1, now(), $2, $3, $4, $5, $6, $7)`,
      [startedAt, r.checked, r.credited, r.closed, r.refundsSettled, r.errors.length, JSON.stringify({ errors: r.errors })],
    );
  }
  return r;
}

export type Reconciler = { stop: () => Promise<void>; runNow: () => Promise<ReconcileReport | undefined> };

/** Runs the reconciler every `intervalMs` until stopped; a run never overlaps the previous one. */
export function startReconciler(deps: ReconcileDeps, options: ReconcileOptions & { intervalMs: number }): Reconciler {
  let running: Promise<ReconcileReport | undefined> | undefined;
  let stopped = false;
  const stopping = new AbortController();
  const runNow = () => {
    running ??= reconcileLocked(deps, { ...options, signal: stopping.signal })
      .catch((error: unknown) => {
        deps.log?.warn({ err: (error as Error).message }, "reconcile.failed");
        return undefined;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => {
    if (!stopped) void runNow();
  }, options.intervalMs);
  timer.unref();
  return {
    runNow,
    stop: async () => {
      stopped = true;
      stopping.abort();
      clearInterval(timer);
      await running;
    },
  };
}
