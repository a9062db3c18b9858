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

/** One simulated gateway (Alipay or WeChat Pay v3), mounted at the simulator's root. */
export interface ProviderSimulator {
  readonly provider: Provider;
  /** Serves the gateway API and the payer page (`/payer/<provider>/<orderId>`). */
  readonly router: Router;
  readonly notifier: NotificationDispatcher;
  /** As if the payer pressed Pay: marks the trade paid and sends the signed notification. */
  pay(orderId: string): Promise<void>;
  /** As if the payer pressed Cancel / let it lapse: closes the trade; no notification. */
  cancel(orderId: string): Promise<void>;
  trade(orderId: string): SimulatedTrade | undefined;
}
