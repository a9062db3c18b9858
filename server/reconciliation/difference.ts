/**
 * What a daily reconciliation finds, whatever it compares: a gateway's bill against our orders, refunds and ledger,
 * or one chain and EntryPoint's events against our settlements, charges and the paymaster's deposit.
 *
 * A scope is what is reconciled: "alipay", "wechat", or "chain:<chainId>:<entryPoint>" (lower-case address).
 * A day is a calendar day in China Standard Time (UTC+8), the gateways' bill day, for every scope alike.
 */

export type DifferenceKind =
  // gateway bills ↔ orders ↔ ledger
  | "missing_credit" // the bill has a payment our order does not show as credited: credited now, exactly once, and flagged
  | "not_in_bill" // we credited an order the bill does not have
  | "amount_mismatch" // the bill's amount for an order is not the order's
  | "refund_mismatch" // a refund in the bill we do not have as succeeded (or of another amount), or one of ours the bill lacks
  | "unknown_order" // the bill has a payment for an order id we never created
  | "ledger_mismatch" // a paid order or a succeeded refund without exactly its ledger row
  | "fund_flow_mismatch" // WeChat's fund-flow bill does not add up with the trade bill
  // chain ↔ settlements ↔ charges ↔ deposit
  | "unsettled_operation" // a UserOperationEvent our paymaster paid that no settlement records
  | "settlement_not_on_chain" // a settlement whose event the chain does not have (any more)
  | "cost_mismatch" // the settlement's actualGasCost is not the event's
  | "charge_mismatch" // the charge is not ceil(actualGasCost × the price locked at signing)
  | "deposit_mismatch"; // the deposit's change is not deposits − withdrawals − Σ actualGasCost

export const DIFFERENCE_KINDS: readonly DifferenceKind[] = [
  "missing_credit",
  "not_in_bill",
  "amount_mismatch",
  "refund_mismatch",
  "unknown_order",
  "ledger_mismatch",
  "fund_flow_mismatch",
  "unsettled_operation",
  "settlement_not_on_chain",
  "cost_mismatch",
  "charge_mismatch",
  "deposit_mismatch",
];

/** One difference: what it concerns (an order, refund, operation hash, "deposit"), both sides, and why. */
export type Difference = {
  kind: DifferenceKind;
  /** The order id, refund id, userOpHash or "deposit" it is about: with scope, day and kind, its identity. */
  reference: string;
  /** What our side (orders, ledger, settlements) says, as a short string ("1000 fen", "paid", "absent"). */
  expected?: string;
  /** What the other side (the bill, the chain) says. */
  actual?: string;
  /** In words, for the report: why it is a difference. */
  cause: string;
  /** What was done about it, when something was (e.g. "credited through the exactly-once path"). */
  resolution?: string;
};

/** The outcome of reconciling one scope for one day; `figures` are the totals both sides were summed to (strings: bigint). */
export type ScopeResult = {
  scope: string;
  day: string;
  status: "ties_out" | "differences" | "not_ready";
  /** e.g. { billPayments: "12", billPaymentFen: "12000", creditedFen: "12000", feeMilliFen: "72000" } */
  figures: Record<string, string>;
  differences: Difference[];
  /** Why not_ready (the bill is not out yet, the chain has not reached the day's end). */
  detail?: string;
};

/** The day's bounds: [start, end) in UTC for a YYYY-MM-DD day in China Standard Time. */
export function dayBounds(day: string): { start: Date; end: Date } {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new RangeError(`day must be YYYY-MM-DD: got ${day}`);
  const start = new Date(`${day}T00:00:00+08:00`);
  if (Number.isNaN(start.getTime()) || dayOf(start) !== day) {
    throw new RangeError(`day ${day} is not a calendar day`);
  }
  return { start, end: new Date(start.getTime() + 86_400_000) };
}

/** The CST day (YYYY-MM-DD) a moment falls in. */
export function dayOf(moment: Date): string {
  return new Date(moment.getTime() + 8 * 3_600_000).toISOString().slice(0, 10);
}
