import type { Router } from "express";
import type { Provider } from "../../server/payments/gateway";
import type { NotificationDispatcher } from "./notifier";

/** A trade in a simulated gateway's own order book. */
export type SimulatedTrade = {
  orderId: string;
  amountFen: bigint;
  status: "pending" | "paid" | "closed";
  gatewayTradeNo: string;
  notifyUrl: string;
  createdAt: Date;
  expiresAt?: Date;
  paidAt?: Date;
  refundedFen: bigint;
  /** WeChat: NATIVE, MWEB (H5) or JSAPI; and H5's reported payer_client_ip. */
  tradeType?: string;
  payerClientIp?: string;
};

/**
 * A difference the simulator puts into its bills, so tests can prove the daily reconciliation finds each kind:
 * - `silent_payment`: the payer pays, but no notification is ever sent and queries keep answering unpaid
 *   (WAIT_BUYER_PAY / NOTPAY): only the bill shows the money came in;
 * - `amount_off_by_one_fen`: the bill lists the payment one fen above what was paid;
 * - `console_refund`: a refund made in the merchant console (no out_refund_no of the merchant's): the money goes
 *   back, the bill lists it, the merchant's system never asked for it.
 */
export type BillFault =
  | { kind: "silent_payment"; orderId: string }
  | { kind: "amount_off_by_one_fen"; orderId: string }
  | { kind: "console_refund"; orderId: string; amountFen: bigint };

/** One simulated gateway (Alipay or WeChat Pay v3), mounted at the simulator's root. */
export interface ProviderSimulator {
  readonly provider: Provider;
  /** Serves the gateway API and the payer page (`/payer/<provider>/<orderId>`). */
  readonly router: Router;
  readonly notifier: NotificationDispatcher;
  /** As if the payer pressed Pay: marks the trade paid and sends the signed notification. */
  pay(orderId: string): Promise<void>;
  /**
   * As if the payer pressed Cancel on the payer page; no notification. As at the real gateways, the trade stays
   * unpaid and payable (Alipay WAIT_BUYER_PAY, WeChat Pay NOTPAY) until it expires or the merchant closes it.
   */
  cancel(orderId: string): Promise<void>;
  trade(orderId: string): SimulatedTrade | undefined;
  /** Puts a difference into the bills (see BillFault); a silent_payment also pays the trade, silently. */
  injectBillFault(fault: BillFault): Promise<void>;
}

/**
 * The simulator's business clock: trade, payment and refund times and the bills' days follow it (a test can play
 * a month in seconds); signatures and their timestamps always use the real clock, as the merchant checks them.
 */
export type SimulatorClock = () => Date;
