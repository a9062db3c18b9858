/**
 * Alipay (支付宝) behind the PaymentGateway interface, through the official `alipay-sdk` and Alipay's OpenAPI v2
 * gateway (`gateway.do`): 当面付 precreate for QR checkout, 电脑网站支付 page pay for the browser checkout, 手机网站支付
 * (`alipay.trade.wap.pay`) for phone browsers.
 *
 * Amounts cross the wire as yuan strings ("10.00"); we convert them to and from integer fen exactly, never
 * through floating point. Every gateway response is checked against Alipay's public key (`validateSign`).
 *
 * Notifications are checked as Alipay's checklist says: signature, then app_id and seller_id (our PID), then the
 * order (out_trade_no) and its total_amount (callbacks.ts). A refund is notified on the same notify_url: a partial
 * one as an ordinary TRADE_SUCCESS notification carrying refund_fee / gmt_refund / out_biz_no, the one that
 * empties the trade as TRADE_CLOSED; both come back as refund notifications, never as payments.
 *
 * The daily trade bill (alipay.data.dataservice.bill.downloadurl.query, bill_type trade) is a 30-second URL to a
 * zip of GBK CSV files, read by alipayBill.ts.
 */
import { createPrivateKey, createPublicKey, createVerify, type KeyObject } from "node:crypto";
import { AlipayRequestError, AlipaySdk } from "alipay-sdk";
import { z } from "zod";
import {
  type BillDownload,
  type CallbackReply,
  type CreatedPayment,
  GatewayError,
  type GatewayBill,
  type GatewayOrder,
  type IncomingCallback,
  type PaymentFlow,
  type PaymentGateway,
  type RefundRequest,
  type RefundState,
  type TradeState,
  type VerifyCallbackResult,
} from "../gateway";
import { readAlipayTradeBill } from "./alipayBill";

export const alipayGatewayConfigSchema = z.object({
  appId: z.string().min(1),
  /**
   * Our PID (partner id, 2088 + 12 digits: the open platform console's 账号中心 / 商家平台): every notification's
   * seller_id must be it. Required: a notification is only ours when app_id and seller_id both are.
   */
  sellerId: z.string().regex(/^2088\d{12}$/, "must be the merchant's PID: 2088 and 12 digits"),
  /** The app's RSA-2048 private key: PEM (PKCS#1 or PKCS#8) or the bare base64 Alipay's key tool prints. */
  privateKey: z.string().min(1),
  /** Alipay's public key for this app (from the open platform console), not the app's own public key. */
  alipayPublicKey: z.string().min(1),
  /** e.g. https://openapi.alipay.com/gateway.do, or the simulator's `${simUrl}/alipay/gateway.do`. */
  gatewayUrl: z.url(),
  /** Where Alipay posts payment notifications (our POST /v1/payments/alipay/notify). */
  notifyUrl: z.url(),
  /** Where page pay sends the payer's browser back after paying. */
  returnUrl: z.url().optional(),
  /** The default flow: "qr": precreate, the payer scans a QR code; "page": page pay, the payer's browser goes to Alipay. */
  checkout: z.enum(["qr", "page"]),
  /** The flows the merchant has signed up for at Alipay (当面付, 电脑网站支付, 手机网站支付); default: `checkout` alone. */
  flows: z.array(z.enum(["qr", "page", "wap"])).min(1).optional(),
  /** WAP: where the browser goes back after paying (our checkout); `order=<id>` is added to it. */
  wapReturnUrl: z.url().optional(),
  /** WAP: where the payer goes on leaving Alipay's cashier unpaid (quit_url). */
  quitUrl: z.url().optional(),
  timeoutMs: z.number().int().positive(),
});
export type AlipayGatewayConfig = z.infer<typeof alipayGatewayConfigSchema>;

/** The gateway refuses to start on a configuration its schema does not accept, naming the fields (never their values: keys). */
function checkConfig(input: AlipayGatewayConfig): AlipayGatewayConfig {
  const parsed = alipayGatewayConfigSchema
    .refine((c) => !c.flows || c.flows.includes(c.checkout), { path: ["checkout"], message: "must be one of flows" })
    .safeParse(input);
  if (parsed.success) return parsed.data;
  throw new Error(`Alipay gateway configuration: ${parsed.error.issues.map((i) => `${i.path.map(String).join(".")} ${i.message}`).join("; ")}`);
}

/** Alipay's "it worked" response code; anything else carries a sub_code saying why not. */
const ALIPAY_SUCCESS = "10000";
/**
 * Definitive refusals of a refund are `failed`. ACQ.SYSTEM_ERROR may pass on a retry (it throws: the caller
 * retries); ACQ.SELLER_BALANCE_NOT_ENOUGH is a state, not a fault: the refund stays pending and is repeated with
 * the same out_request_no once the merchant's balance covers it.
 */
const RETRYABLE_REFUND_CODES = new Set(["ACQ.SYSTEM_ERROR", "ACQ.SELLER_BALANCE_NOT_ENOUGH"]);
const BALANCE_SHORT = "ACQ.SELLER_BALANCE_NOT_ENOUGH";
const PAID_STATUSES = new Set(["TRADE_SUCCESS", "TRADE_FINISHED"]);
/**
 * Alipay produces day D's trade bill by 09:00 on D+1 (Beijing), "later in special cases", and answers
 * isp.bill_not_exist both before that and for a day without trades. Until noon on D+1 we read it as not ready yet;
 * after that, as a day without trades (a ready bill with no entries).
 */
const BILL_SURELY_OUT_AFTER_MS = (24 + 12) * 60 * 60 * 1000;
const BILL_DOWNLOAD_TIMEOUT_MS = 30_000;

export type AlipayGatewayOptions = {
  /** The merchant's clock, to tell a bill not produced yet from a day without trades; default the real clock. */
  now?: () => Date;
};

export function createAlipayGateway(input: AlipayGatewayConfig, options: AlipayGatewayOptions = {}): PaymentGateway {
  const config = checkConfig(input);
  const now = options.now ?? (() => new Date());
  const alipayPublicKey = loadPublicKey(config.alipayPublicKey);
  const sdk = new AlipaySdk({
    appId: config.appId,
    // The SDK re-wraps the key body under the header `keyType` names, so hand it one canonical encoding.
    privateKey: toPkcs1Pem(loadPrivateKey(config.privateKey)),
    keyType: "PKCS1",
    alipayPublicKey: toSpkiPem(alipayPublicKey),
    gateway: config.gatewayUrl,
    timeout: config.timeoutMs,
    // Keep Alipay's own snake_case field names, as in its documentation.
    camelcase: false,
  });
  const flows: readonly PaymentFlow[] = config.flows ?? [config.checkout];
  const call = (method: string, bizContent: Record<string, string>, extra: Record<string, string> = {}) =>
    execVerified(sdk, method, { ...extra, bizContent });

  async function createPayment(order: GatewayOrder): Promise<CreatedPayment> {
    const bizContent = {
      out_trade_no: order.orderId,
      total_amount: formatYuan(order.amountFen),
      subject: order.subject,
      // Whole seconds, rounded down: the gateway never accepts payment after our own expiry.
      time_expire: formatBeijingTime(order.expiresAt),
    };
    const flow = order.flow ?? config.checkout;
    if (!flows.includes(flow)) throw new GatewayError(`Alipay flow ${flow} is not enabled`, "alipay", "FLOW_NOT_ENABLED");
    if (flow === "page") return { payUrl: pagePayUrl(bizContent) };
    if (flow === "wap") return { payUrl: wapPayUrl(order.orderId, bizContent) };
    const method = "alipay.trade.precreate";
    const reply = await call(method, bizContent, { notify_url: config.notifyUrl });
    if (reply.code !== ALIPAY_SUCCESS) throw refusal(method, reply);
    return { qrCode: readReply(method, precreateReplySchema, reply).qr_code };
  }

  /** Page pay never reaches the gateway from here: the SDK signs a URL and the payer's browser opens it. */
  function pagePayUrl(bizContent: Record<string, string>): string {
    return sdk.pageExecute("alipay.trade.page.pay", "GET", {
      notifyUrl: config.notifyUrl,
      // An undefined field would be signed and sent as the literal string "undefined".
      ...(config.returnUrl ? { returnUrl: config.returnUrl } : {}),
      bizContent: { ...bizContent, product_code: "FAST_INSTANT_TRADE_PAY" },
    });
  }

  /**
   * 手机网站支付: like page pay, a signed URL the phone's browser opens (Alipay's WAP cashier, or the Alipay app).
   * return_url brings the payer back to our checkout for this order; that arrival credits nothing.
   */
  function wapPayUrl(orderId: string, bizContent: Record<string, string>): string {
    const returnUrl = config.wapReturnUrl ?? config.returnUrl;
    return sdk.pageExecute("alipay.trade.wap.pay", "GET", {
      notifyUrl: config.notifyUrl,
      ...(returnUrl ? { returnUrl: withOrder(returnUrl, orderId) } : {}),
      bizContent: { ...bizContent, product_code: "QUICK_WAP_WAY", ...(config.quitUrl ? { quit_url: withOrder(config.quitUrl, orderId) } : {}) },
    });
  }

  async function queryTrade(orderId: string): Promise<TradeState> {
    const method = "alipay.trade.query";
    const reply = await call(method, { out_trade_no: orderId });
    // A precreated trade only exists at Alipay once the payer has scanned its QR code.
    if (reply.sub_code === "ACQ.TRADE_NOT_EXIST") return { status: "not_found" };
    if (reply.code !== ALIPAY_SUCCESS) throw refusal(method, reply);
    const trade = readReply(method, queryReplySchema, reply);
    // Alipay's query answer does not document seller_id; should it carry one, it must be ours too
    if (trade.seller_id !== undefined && trade.seller_id !== config.sellerId) {
      throw new GatewayError(`Alipay ${method}: trade ${orderId} belongs to seller ${trade.seller_id}, not to us`, "alipay", "SELLER_MISMATCH");
    }
    return tradeStateFrom(method, trade);
  }

  async function closeTrade(orderId: string): Promise<void> {
    const method = "alipay.trade.close";
    const reply = await call(method, { out_trade_no: orderId });
    // TRADE_NOT_EXIST: never scanned. Alipay still locks the QR code, so the payer can no longer pay it.
    if (reply.code === ALIPAY_SUCCESS || reply.sub_code === "ACQ.TRADE_NOT_EXIST") return;
    // Alipay answers TRADE_STATUS_ERROR both for a closed trade (fine) and for a paid one (not fine): ask.
    if (reply.sub_code === "ACQ.TRADE_STATUS_ERROR") {
      const state = await queryTrade(orderId);
      if (state.status === "closed") return;
      if (state.status === "paid") throw new GatewayError(`Alipay ${method}: trade ${orderId} is already paid`, "alipay", reply.sub_code);
    }
    throw refusal(method, reply);
  }

  async function refund(request: RefundRequest): Promise<RefundState> {
    const method = "alipay.trade.refund";
    const reply = await call(method, {
      out_trade_no: request.orderId,
      out_request_no: request.refundId,
      refund_amount: formatYuan(request.amountFen),
      ...(request.reason ? { refund_reason: request.reason } : {}),
    });
    if (reply.code === ALIPAY_SUCCESS) {
      // fund_change "N" means no money moved by this call (e.g. a repeat): only the refund query can tell.
      const done = readReply(method, refundReplySchema, reply);
      if (done.fund_change === "Y") return succeeded(done.gmt_refund_pay);
      const state = await queryRefund(request.orderId, request.refundId);
      return state.status === "not_found" ? { status: "pending" } : state;
    }
    if (reply.sub_code === BALANCE_SHORT) return { status: "pending", gatewayStatus: BALANCE_SHORT };
    if (reply.code === "40004" && !RETRYABLE_REFUND_CODES.has(reply.sub_code ?? "")) {
      return { status: "failed", reason: describeReply(reply) };
    }
    throw refusal(method, reply);
  }

  async function queryRefund(orderId: string, refundId: string): Promise<RefundState> {
    const method = "alipay.trade.fastpay.refund.query";
    const reply = await call(method, { out_trade_no: orderId, out_request_no: refundId });
    if (reply.sub_code === "ACQ.TRADE_NOT_EXIST") return { status: "not_found" };
    if (reply.code !== ALIPAY_SUCCESS) throw refusal(method, reply);
    const found = readReply(method, refundQueryReplySchema, reply);
    // Alipay's rule: no refund data means no such refund; data with an empty or REFUND_SUCCESS status means done.
    if (found.refund_amount === undefined) return { status: "not_found" };
    if (found.refund_status === undefined || found.refund_status === "REFUND_SUCCESS") return succeeded(found.gmt_refund_pay);
    return { status: "pending" };
  }

  /**
   * The day's trade bill. isp.bill_not_exist is ambiguous (not produced yet, or no trades that day): our clock
   * tells them apart (BILL_SURELY_OUT_AFTER_MS). A date Alipay refuses as invalid while the day is not over, or
   * only just, is not ready either.
   */
  async function downloadBill(date: string): Promise<BillDownload> {
    const dayStart = beijingDayStart(date);
    if (!dayStart) throw new GatewayError(`Alipay bill: ${date} is not a YYYY-MM-DD day`, "alipay");
    const method = "alipay.data.dataservice.bill.downloadurl.query";
    const reply = await call(method, { bill_type: "trade", bill_date: date });
    if (reply.code !== ALIPAY_SUCCESS) {
      const surelyOut = now().getTime() >= dayStart.getTime() + BILL_SURELY_OUT_AFTER_MS;
      if (reply.sub_code === "isp.bill_not_exist") {
        if (!surelyOut) return { status: "not_ready", detail: `Alipay has not produced the trade bill of ${date} yet (isp.bill_not_exist; it is out from 09:00 the next day)` };
        return { status: "ready", bill: emptyBill(date) };
      }
      if (reply.sub_code === "isv.invalid-arguments" && !surelyOut) {
        return { status: "not_ready", detail: `Alipay does not give the trade bill of ${date} yet (${describeReply(reply)}): the day is not over` };
      }
      throw refusal(method, reply);
    }
    const { bill_download_url: url } = readReply(method, billUrlReplySchema, reply);
    return { status: "ready", bill: readAlipayTradeBill(date, await fetchBillZip(url)) };
  }

  async function verifyCallback(callback: IncomingCallback): Promise<VerifyCallbackResult> {
    const form = parseForm(callback);
    if (!form) return reject("bad_request", "body is not a form-urlencoded Alipay notification");
    if (!form.sign) return reject("bad_signature", "sign is missing");
    // checkNotifySign picks the hash from sign_type; RSA (SHA-1) would be a downgrade we never agreed to.
    if (form.sign_type !== undefined && form.sign_type !== "RSA2") return reject("bad_signature", `sign_type ${form.sign_type} is not RSA2`);
    if (!checkNotifySignature(alipayPublicKey, form)) return reject("bad_signature", "signature does not verify with the Alipay public key");
    if (form.app_id !== config.appId) return reject("merchant_mismatch", `app_id ${form.app_id ?? "(none)"} is not ours`);
    // Alipay always names the seller; a notification without ours is for another merchant (or not Alipay's)
    if (form.seller_id !== config.sellerId) return reject("merchant_mismatch", `seller_id ${form.seller_id ?? "(none)"} is not ours`);
    if (isRefundNotification(form)) return refundNotificationFrom(form);
    return paymentNotificationFrom(form);
  }

  return {
    provider: "alipay",
    flows,
    defaultFlow: config.checkout,
    createPayment,
    queryTrade,
    closeTrade,
    refund,
    queryRefund,
    verifyCallback,
    downloadBill,
    successReply: (): CallbackReply => ({ status: 200, contentType: "text/plain", body: "success" }),
    // Alipay treats any body but exactly `success` as "not received" and retries; the reason stays with us.
    failureReply: (_message: string): CallbackReply => ({ status: 200, contentType: "text/plain", body: "fail" }),
  };
}

/** `url` with `order=<orderId>` added, so the page the payer lands on knows which order to show. */
function withOrder(url: string, orderId: string): string {
  const withParam = new URL(url);
  withParam.searchParams.set("order", orderId);
  return withParam.toString();
}

// ---- Gateway calls -------------------------------------------------------------------------------------

const replySchema = z.looseObject({
  code: z.string(),
  msg: z.string().optional(),
  sub_code: z.string().optional(),
  sub_msg: z.string().optional(),
});
type AlipayReply = z.infer<typeof replySchema>;

const precreateReplySchema = z.object({ qr_code: z.string().min(1) });
const queryReplySchema = z.object({
  trade_no: z.string(),
  trade_status: z.string(),
  total_amount: z.string(),
  send_pay_date: z.string().optional(),
  seller_id: z.string().optional(),
});
const refundReplySchema = z.object({ fund_change: z.string(), gmt_refund_pay: z.string().optional() });
const refundQueryReplySchema = z.object({ refund_amount: z.string().optional(), refund_status: z.string().optional(), gmt_refund_pay: z.string().optional() });
const billUrlReplySchema = z.object({ bill_download_url: z.url() });

/** A succeeded refund, with the time the money left when Alipay says (gmt_refund_pay). */
function succeeded(gmtRefundPay: string | undefined): RefundState {
  const succeededAt = gmtRefundPay ? parseBeijingTime(gmtRefundPay) : undefined;
  return { status: "succeeded", ...(succeededAt ? { succeededAt } : {}) };
}

/** A plain GET of the 30-second URL: the zip itself, or a GatewayError saying why not. */
async function fetchBillZip(url: string): Promise<Uint8Array> {
  let response: globalThis.Response;
  try {
    response = await fetch(url, { redirect: "follow", signal: AbortSignal.timeout(BILL_DOWNLOAD_TIMEOUT_MS) });
  } catch {
    throw new GatewayError("Alipay bill download failed: the download URL is unreachable or timed out", "alipay");
  }
  const body = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) throw new GatewayError(`Alipay bill download failed: HTTP ${response.status} (the URL lives 30 seconds)`, "alipay");
  return body;
}

function emptyBill(date: string): GatewayBill {
  return { provider: "alipay", date, entries: [], summary: { paymentCount: 0, paymentFen: 0n, refundCount: 0, refundFen: 0n, feeMilliFen: 0n }, source: { files: [] } };
}

/** 00:00 of a YYYY-MM-DD day in Beijing time; undefined when it is no calendar day. */
function beijingDayStart(date: string): Date | undefined {
  return /^\d{4}-\d{2}-\d{2}$/.test(date) ? parseBeijingTime(`${date} 00:00:00`) : undefined;
}

/** One signed request; the response's signature must verify, or the call fails. */
async function execVerified(sdk: AlipaySdk, method: string, params: Record<string, unknown>): Promise<AlipayReply> {
  let raw: unknown;
  try {
    raw = await sdk.exec(method, params, { validateSign: true });
  } catch (error) {
    throw new GatewayError(`Alipay ${method} failed: ${describeSdkError(error)}`, "alipay");
  }
  const reply = replySchema.safeParse(raw);
  if (!reply.success) throw new GatewayError(`Alipay ${method} failed: response has no code`, "alipay");
  return reply.data;
}

function readReply<T>(method: string, schema: z.ZodType<T>, reply: AlipayReply): T {
  const parsed = schema.safeParse(reply);
  if (!parsed.success) throw new GatewayError(`Alipay ${method} failed: unexpected response fields`, "alipay", reply.sub_code);
  return parsed.data;
}

function refusal(method: string, reply: AlipayReply): GatewayError {
  return new GatewayError(`Alipay ${method} refused: ${describeReply(reply)}`, "alipay", reply.sub_code ?? reply.code);
}

function describeReply(reply: AlipayReply): string {
  return `${reply.sub_code ?? reply.code} ${reply.sub_msg ?? reply.msg ?? ""}`.trim();
}

/** The SDK reports failures only through its (Chinese) messages; name them, without echoing request data. */
function describeSdkError(error: unknown): string {
  if (error instanceof AlipayRequestError) {
    if (error.message.startsWith("验签失败")) return "response signature does not verify with the Alipay public key";
    if (error.message.startsWith("HttpClient Request error")) return "gateway unreachable or timed out";
    if (error.message.startsWith("HTTP 请求错误")) return `gateway answered ${error.message.replace(/^.*status: /, "HTTP ")}`;
    return "malformed gateway response";
  }
  // An unsigned response (e.g. isv.invalid-app-id) makes the SDK's verifier throw a TypeError on the missing sign.
  if (error instanceof TypeError && error.message.includes('"signature"')) return "response is not signed";
  return "request could not be sent";
}

function tradeStateFrom(method: string, trade: z.infer<typeof queryReplySchema>): TradeState {
  switch (trade.trade_status) {
    case "WAIT_BUYER_PAY":
      return { status: "pending" };
    // Also what a fully refunded trade becomes.
    case "TRADE_CLOSED":
      return { status: "closed" };
    case "TRADE_SUCCESS":
    case "TRADE_FINISHED": {
      const amountFen = parseYuan(trade.total_amount);
      if (amountFen === undefined) throw new GatewayError(`Alipay ${method}: bad total_amount ${trade.total_amount}`, "alipay");
      const paidAt = trade.send_pay_date ? parseBeijingTime(trade.send_pay_date) : undefined;
      return { status: "paid", amountFen, gatewayTradeNo: trade.trade_no, ...(paidAt ? { paidAt } : {}) };
    }
    default:
      throw new GatewayError(`Alipay ${method}: unknown trade_status ${trade.trade_status}`, "alipay");
  }
}

// ---- Notifications -------------------------------------------------------------------------------------

type NotificationForm = Record<string, string | undefined>;

/** The form fields, or undefined when the body is not a form or repeats a field (which copy was signed?). */
function parseForm(callback: IncomingCallback): NotificationForm | undefined {
  const contentType = String(callback.headers["content-type"] ?? "application/x-www-form-urlencoded");
  if (!contentType.toLowerCase().startsWith("application/x-www-form-urlencoded")) return undefined;
  const fields = [...new URLSearchParams(callback.rawBody)];
  const names = new Set(fields.map(([name]) => name));
  if (fields.length === 0 || names.size !== fields.length) return undefined;
  return Object.fromEntries(fields);
}

/**
 * alipay-sdk's checkNotifySignV2, with Alipay's public key parsed once: the SDK hands the PEM text to node:crypto,
 * which parses it again for every verification — five times the cost of the RSA verify itself. It accepts exactly
 * what the SDK accepts (alipay.test.ts checks the two side by side): the RSA2 signature over the fields as received
 * (V2: the form parser URL-decoded them once, nothing decodes them again), sorted by name, `name=value` joined with
 * `&`, `sign` left out, and `sign_type` — as sent, or RSA2 when absent — left in or left out. Alipay signs
 * notifications without it, so that is tried first; the SDK tries it second, one wasted RSA verify per notification.
 * The caller has refused any sign_type but RSA2.
 */
function checkNotifySignature(publicKey: KeyObject, form: NotificationForm): boolean {
  const { sign, ...fields } = form;
  if (!sign) return false;
  const signed = (content: Record<string, string | undefined>) => {
    const text = Object.keys(content)
      .sort()
      .filter((name) => name)
      .map((name) => `${name}=${content[name]}`)
      .join("&");
    try {
      return createVerify("RSA-SHA256").update(text, "utf8").verify(publicKey, sign, "base64");
    } catch {
      return false; // e.g. a sign that is not base64 of the right length
    }
  };
  const { sign_type: signType, ...withoutSignType } = fields;
  return signed(withoutSignType) || signed({ ...withoutSignType, sign_type: signType || "RSA2" });
}

/**
 * Alipay also notifies refunds on the payment's notify_url: they carry refund_fee and gmt_refund (and out_biz_no,
 * the refund's out_request_no). A TRADE_CLOSED without them is an unpaid trade closing, not a refund.
 */
function isRefundNotification(form: NotificationForm): boolean {
  return form.refund_fee !== undefined || form.gmt_refund !== undefined || form.out_biz_no !== undefined;
}

/**
 * A refund notification: partial (TRADE_SUCCESS) or the one that empties the trade (TRADE_CLOSED). Either way the
 * refund named by out_biz_no has succeeded, at gmt_refund (gmt_close when only that is given); refund_fee is all
 * refunded on the trade so far.
 */
function refundNotificationFrom(form: NotificationForm): VerifyCallbackResult {
  const { out_trade_no: orderId, trade_status: gatewayStatus, refund_fee: refundFee } = form;
  if (!orderId || !gatewayStatus || !refundFee) return reject("bad_request", "refund notification without out_trade_no, trade_status or refund_fee");
  const tradeRefundedFen = parseYuan(refundFee);
  if (tradeRefundedFen === undefined) return reject("bad_request", `refund_fee ${refundFee} is not a yuan amount`);
  const when = form.gmt_refund ?? form.gmt_close;
  const succeededAt = when ? parseBeijingTime(when) : undefined;
  if (when && !succeededAt) return reject("bad_request", `gmt_refund ${when} is not an Alipay time`);
  return {
    ok: true,
    kind: "refund",
    refund: {
      orderId,
      ...(form.out_biz_no ? { refundId: form.out_biz_no } : {}),
      state: { status: "succeeded", ...(succeededAt ? { succeededAt } : {}) },
      gatewayStatus,
      tradeRefundedFen,
      payload: form,
    },
  };
}

function paymentNotificationFrom(form: NotificationForm): VerifyCallbackResult {
  const { out_trade_no: orderId, trade_no: gatewayTradeNo, trade_status: gatewayStatus, total_amount: total } = form;
  if (!orderId || !gatewayTradeNo || !gatewayStatus || !total) {
    return reject("bad_request", "out_trade_no, trade_no, trade_status or total_amount is missing");
  }
  const amountFen = parseYuan(total);
  if (amountFen === undefined) return reject("bad_request", `total_amount ${total} is not a yuan amount`);
  const paidAt = form.gmt_payment ? parseBeijingTime(form.gmt_payment) : undefined;
  return {
    ok: true,
    notification: {
      orderId,
      amountFen,
      paid: PAID_STATUSES.has(gatewayStatus),
      gatewayStatus,
      gatewayTradeNo,
      ...(paidAt ? { paidAt } : {}),
      payload: form,
    },
  };
}

function reject(code: Extract<VerifyCallbackResult, { ok: false }>["code"], detail: string): VerifyCallbackResult {
  return { ok: false, code, detail };
}

// ---- Keys ----------------------------------------------------------------------------------------------

/** The app private key as PEM (PKCS#1 or PKCS#8) or bare base64 DER; errors never echo the key. */
export function loadPrivateKey(text: string): KeyObject {
  return loadRsaKey("Alipay app private key", text, createPrivateKey, [
    (der) => createPrivateKey({ key: der, format: "der", type: "pkcs8" }),
    (der) => createPrivateKey({ key: der, format: "der", type: "pkcs1" }),
  ]);
}

/** Alipay's public key as PEM or the bare base64 DER the open platform console shows. */
export function loadPublicKey(text: string): KeyObject {
  return loadRsaKey("Alipay public key", text, createPublicKey, [
    (der) => createPublicKey({ key: der, format: "der", type: "spki" }),
    (der) => createPublicKey({ key: der, format: "der", type: "pkcs1" }),
  ]);
}

function loadRsaKey(what: string, text: string, fromPem: (pem: string) => KeyObject, fromDer: ((der: Buffer) => KeyObject)[]): KeyObject {
  const trimmed = text.trim();
  const readers = trimmed.startsWith("-----BEGIN")
    ? [() => fromPem(trimmed)]
    : fromDer.map((read) => () => read(Buffer.from(trimmed.replace(/\s+/g, ""), "base64")));
  for (const read of readers) {
    try {
      const key = read();
      if (key.asymmetricKeyType === "rsa") return key;
    } catch {
      // not this encoding; try the next
    }
  }
  throw new Error(`${what} is not an RSA key in PEM or base64 DER form`);
}

function toPkcs1Pem(key: KeyObject): string {
  return key.export({ type: "pkcs1", format: "pem" }).toString();
}

function toSpkiPem(key: KeyObject): string {
  return key.export({ type: "spki", format: "pem" }).toString();
}

// ---- Money and time, as Alipay writes them -------------------------------------------------------------

const YUAN_PATTERN = /^(0|[1-9]\d*)(?:\.(\d{1,2}))?$/;

/** "10.00" → 1000n fen; undefined for anything that is not a plain non-negative yuan amount with ≤ 2 decimals. */
export function parseYuan(text: string): bigint | undefined {
  const match = YUAN_PATTERN.exec(text);
  if (!match) return undefined;
  return BigInt(match[1]!) * 100n + BigInt((match[2] ?? "").padEnd(2, "0"));
}

/** 1000n fen → "10.00". */
export function formatYuan(fen: bigint): string {
  if (fen < 0n) throw new RangeError("a yuan amount cannot be negative");
  return `${fen / 100n}.${(fen % 100n).toString().padStart(2, "0")}`;
}

/** Alipay's timestamps are China Standard Time (UTC+8, no daylight saving), "yyyy-MM-dd HH:mm:ss". */
const BEIJING_OFFSET_MS = 8 * 60 * 60 * 1000;
const BEIJING_TIME_PATTERN = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})(?::(\d{2}))?$/;

export function formatBeijingTime(date: Date): string {
  return new Date(date.getTime() + BEIJING_OFFSET_MS).toISOString().slice(0, 19).replace("T", " ");
}

/** "2024-01-02 03:04:05" (seconds optional) in UTC+8 → Date; undefined when malformed or not a real time. */
export function parseBeijingTime(text: string): Date | undefined {
  const match = BEIJING_TIME_PATTERN.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map((part) => Number(part ?? 0)) as number[];
  const utc = Date.UTC(year!, month! - 1, day!, hour!, minute!, second!);
  const date = new Date(utc - BEIJING_OFFSET_MS);
  // Date.UTC rolls "02-30" over into March; a real time formats back to what we read.
  return formatBeijingTime(date).startsWith(text) ? date : undefined;
}
