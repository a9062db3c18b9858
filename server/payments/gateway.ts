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
  | { status: "succeeded"; gatewayRefundNo?: string }
  | { status: "pending"; gatewayRefundNo?: string }
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

export type VerifyCallbackResult =
  | { ok: true; notification: VerifiedPaymentNotification }
  | { ok: false; code: CallbackRejectionCode; detail: string };

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
  /** Verifies signature (and timestamp, decryption), then our merchant ids. No database access. */
  verifyCallback(callback: IncomingCallback): Promise<VerifyCallbackResult>;
  /** What to answer a callback we processed (or had already processed). */
  successReply(): CallbackReply;
  /** What to answer a callback we refuse; the gateway will retry. */
  failureReply(message: string): CallbackReply;
}
