/**
 * The one interface every payment gateway sits behind. Alipay and WeChat Pay implement it (alipay.ts,
 * wechat.ts); nothing outside `server/payments/` knows which gateway it talks to.
 *
 * Amounts are integer fen (`bigint`). Order ids are ours (`out_trade_no` at the gateway).
 */
import { AppError } from "../platform/errors";
export type Provider = "alipay" | "wechat";
export const PROVIDERS: readonly Provider[] = ["alipay", "wechat"];

/**
 * How the payer pays. Desktop: `qr` (Alipay precreate / WeChat Pay Native) or `page` (Alipay page pay). Phone
 * browser: `wap` (Alipay 手机网站支付) or `h5` (WeChat Pay H5). WeChat's own browser: `jsapi` (WeixinJSBridge).
 */
export type PaymentFlow = "qr" | "page" | "wap" | "h5" | "jsapi";
/** Which flows each gateway has at all (what the merchant may enable). */
export const PROVIDER_FLOWS: Record<Provider, readonly PaymentFlow[]> = { alipay: ["qr", "page", "wap"], wechat: ["qr", "h5", "jsapi"] };

export type GatewayOrder = {
  /** Our order id, sent as out_trade_no: 6–32 characters of [0-9A-Za-z_-]. */
  orderId: string;
  amountFen: bigint;
  /** What the payer sees ("Gas quota top-up"). */
  subject: string;
  /** The gateway stops accepting payment after this. */
  expiresAt: Date;
  /** Default: the gateway's defaultFlow. */
  flow?: PaymentFlow;
  /** The payer, as the flow needs it: h5 the client's IP (WeChat's scene_info), jsapi the OAuth openid. */
  payer?: { clientIp?: string; openId?: string };
};

/** What WeixinJSBridge.invoke("getBrandWCPayRequest", …) takes: signed with the merchant key over appId, timeStamp, nonceStr, package. */
export type JsapiPayParams = { appId: string; timeStamp: string; nonceStr: string; package: string; signType: "RSA"; paySign: string };

/**
 * What the payer needs: a QR payload (Alipay precreate `qr_code`, WeChat Native `code_url`), a page URL (Alipay
 * page pay and WAP, WeChat H5's `h5_url`), or the JSAPI parameters for WeixinJSBridge.
 */
export type CreatedPayment = { qrCode?: string; payUrl?: string; jsapiParams?: JsapiPayParams };

/**
 * Who the payer is, for flows that need it (WeChat JSAPI: the payer's openid, from WeChat's OAuth2 `snsapi_base`).
 * `authorizeUrl` is where the payer's browser goes; WeChat sends it back to `redirectUri` with `?code=&state=`.
 */
export interface PayerIdentification {
  authorizeUrl(redirectUri: string, state: string): string;
  /** Exchanges the one-time code for the payer's openid (PaymentInputError for a bad or used code). */
  openIdFor(code: string): Promise<string>;
  /** The key the OAuth `state` is signed with (derived from the AppSecret). */
  readonly stateKey: Buffer;
}

export type TradeState =
  | { status: "paid"; amountFen: bigint; gatewayTradeNo: string; paidAt?: Date }
  | { status: "pending" }
  | { status: "closed" }
  | { status: "not_found" };

export type RefundRequest = {
  orderId: string;
  /** Our refund id (out_request_no / out_refund_no): the gateway's idempotency key for the refund. */
  refundId: string;
  amountFen: bigint;
  /** The order's paid total (WeChat requires it). */
  totalFen: bigint;
  reason?: string;
};

export type RefundState =
  | { status: "succeeded"; gatewayRefundNo?: string; succeededAt?: Date }
  /**
   * Not final yet. `gatewayStatus` names why when it is worth showing: WeChat `ABNORMAL` (the payer's bank refused
   * the money; it waits in the merchant platform to be re-routed), `NOT_ENOUGH` (the merchant's balance is short:
   * the same refund id is retried later).
   */
  | { status: "pending"; gatewayRefundNo?: string; gatewayStatus?: string }
  | { status: "failed"; reason: string }
  | { status: "not_found" };

/** A gateway callback exactly as it arrived: headers (lower-case names) and the raw body string. */
export type IncomingCallback = { headers: Record<string, string | string[] | undefined>; rawBody: string };

/** A payment notification whose signature and merchant ids checked out. */
export type VerifiedPaymentNotification = {
  orderId: string;
  amountFen: bigint;
  /** TRADE_SUCCESS / TRADE_FINISHED (Alipay), SUCCESS (WeChat). */
  paid: boolean;
  /** The gateway's own status word, for the audit record. */
  gatewayStatus: string;
  gatewayTradeNo: string;
  paidAt?: Date;
  /** The decrypted/parsed notification, stored for audit. */
  payload: unknown;
};

/** Why a callback was rejected: a stable code (stored and counted) and a human detail. */
export type CallbackRejectionCode =
  | "bad_request" // not parseable, fields missing
  | "bad_signature" // signature missing or wrong
  | "unknown_certificate" // WeChat serial we do not hold
  | "stale_timestamp" // WeChat timestamp outside ±5 min
  | "decrypt_failed" // WeChat AES-256-GCM auth tag or key mismatch
  | "merchant_mismatch" // app_id / mchid / appid not ours
  | "unknown_order"
  | "amount_mismatch"
  | "not_paid"
  | "not_a_payment"; // e.g. a refund notification: acknowledged, nothing credited

/**
 * A refund notification whose signature and merchant ids checked out: WeChat `REFUND.SUCCESS` / `REFUND.ABNORMAL` /
 * `REFUND.CLOSED`; Alipay's notification on the payment notify_url carrying `refund_fee` / `gmt_refund` (a partial
 * refund, trade still TRADE_SUCCESS) or `TRADE_CLOSED` after a full refund. It never credits anything.
 */
export type VerifiedRefundNotification = {
  orderId: string;
  /** Our refund id (WeChat out_refund_no, Alipay out_biz_no); absent for a refund made elsewhere (the merchant console). */
  refundId?: string;
  /** What the refund has become; `succeeded` carries the gateway's refund number and time when it gives them. */
  state: Exclude<RefundState, { status: "not_found" }>;
  /** The gateway's own status word (SUCCESS, ABNORMAL, CLOSED, TRADE_SUCCESS, TRADE_CLOSED), for the audit record. */
  gatewayStatus: string;
  /** This refund's amount, when the notification says (WeChat); Alipay gives the trade's refunded total instead. */
  amountFen?: bigint;
  /** Alipay `refund_fee`: all refunded on the trade so far. */
  tradeRefundedFen?: bigint;
  payload: unknown;
};

export type VerifyCallbackResult =
  | { ok: true; kind?: "payment"; notification: VerifiedPaymentNotification }
  | { ok: true; kind: "refund"; refund: VerifiedRefundNotification }
  | { ok: false; code: CallbackRejectionCode; detail: string };

// ---- Bills ---------------------------------------------------------------------------------------------

/**
 * One line of a gateway's daily bill, in fen. A payment is keyed by our order id, a refund by our refund id (a
 * refund made in the merchant console has none of ours: no refundId, or the gateway's own batch number, which
 * matches no refund of ours). Fees are in thousandths of a fen: WeChat
 * gives them to 5 decimals of a yuan.
 */
export type BillEntry =
  | { kind: "payment"; orderId: string; gatewayTradeNo: string; amountFen: bigint; feeMilliFen: bigint; at: Date }
  | { kind: "refund"; orderId: string; refundId?: string; gatewayRefundNo: string; amountFen: bigint; feeMilliFen: bigint; at: Date };

/** The bill's own summary rows; a bill whose lines do not add up to them is refused when read. */
export type BillSummary = { paymentCount: number; paymentFen: bigint; refundCount: number; refundFen: bigint; feeMilliFen: bigint };

/** What moved through the merchant's account that day (WeChat's fund-flow bill): income and expense totals. */
export type FundFlowSummary = { incomeCount: number; incomeFen: bigint; expenseCount: number; expenseFen: bigint };

/** A gateway's bill for one Beijing-time calendar day (the gateways' day), downloaded, integrity-checked and parsed. */
export type GatewayBill = {
  provider: Provider;
  /** YYYY-MM-DD, China Standard Time. */
  date: string;
  entries: BillEntry[];
  summary: BillSummary;
  fundFlow?: FundFlowSummary;
  /** For the audit: the files read and the hash the gateway gave for them (WeChat hash_value). */
  source: { files: string[]; hash?: string };
};

/** `not_ready`: the gateway has not produced that day's bill yet (WeChat STATEMENT_CREATING, a day not over). */
export type BillDownload = { status: "ready"; bill: GatewayBill } | { status: "not_ready"; detail: string };

/** The HTTP reply the gateway expects. */
export type CallbackReply = { status: number; contentType: string; body: string };

/** The gateway answered with a refusal (502 to our caller). */
export class GatewayError extends AppError {
  override name = "GatewayError";
  constructor(
    message: string,
    readonly provider: Provider,
    /** The gateway's error code when it answered (e.g. ACQ.TRADE_NOT_EXIST, ORDER_NOT_EXIST). */
    readonly gatewayCode?: string,
  ) {
    super(502, "gateway_error", message, { gatewayCode }, { detail: `${provider} refused: ${message}` });
  }
}

export interface PaymentGateway {
  readonly provider: Provider;
  /** The flows the merchant enabled (a subset of PROVIDER_FLOWS), and the one a request without `flow` gets. */
  readonly flows: readonly PaymentFlow[];
  readonly defaultFlow: PaymentFlow;
  /** Present when a flow needs to know the payer first (WeChat JSAPI). */
  readonly payerIdentification?: PayerIdentification;
  /** Creates the trade at the gateway; idempotent for the same orderId and amount. */
  createPayment(order: GatewayOrder): Promise<CreatedPayment>;
  queryTrade(orderId: string): Promise<TradeState>;
  /** Closes an unpaid trade; closing an already closed or unknown trade is not an error. */
  closeTrade(orderId: string): Promise<void>;
  /** Starts (or repeats, same refundId) a refund. */
  refund(request: RefundRequest): Promise<RefundState>;
  queryRefund(orderId: string, refundId: string): Promise<RefundState>;
  /**
   * The bill for `date` (YYYY-MM-DD, Beijing time): Alipay's trade bill (a zip of CSV), WeChat's trade bill
   * (bill_type ALL) with its fund-flow bill, each checked (WeChat hash_value) and parsed. A day without trades is
   * a ready bill with no entries.
   */
  downloadBill(date: string): Promise<BillDownload>;
  /** Verifies signature (and timestamp, decryption), then our merchant ids. No database access. */
  verifyCallback(callback: IncomingCallback): Promise<VerifyCallbackResult>;
  /** What to answer a callback we processed (or had already processed). */
  successReply(): CallbackReply;
  /** What to answer a callback we refuse; the gateway will retry. */
  failureReply(message: string): CallbackReply;
}
