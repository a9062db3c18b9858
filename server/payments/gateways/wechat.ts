/**
 * WeChat Pay v3 behind the PaymentGateway interface, on the real `wechatpay-node-v3` client: Native (a QR code's
 * code_url), H5 (h5_url, for phone browsers) and JSAPI (prepay_id and the signed WeixinJSBridge parameters, inside
 * WeChat; the payer's openid comes from WeChat's OAuth, wechatOAuth.ts).
 *
 * The client signs our requests and does little else, so this adapter closes the gaps it leaves:
 * - its HTTP layer is swapped (createHttp) for one that reaches a configurable base URL with a timeout and verifies
 *   every response's Wechatpay-Signature and timestamp before the client sees the body (the client checks neither);
 * - callbacks are verified here over the raw body, with our own per-gateway platform keys: the client's verifySign
 *   reads a process-wide static key map and, for a serial it does not know, fetches /v3/certificates — a serial an
 *   attacker puts in a header would make us call out;
 * - resources are decrypted here with the GCM auth tag checked: the client's decipher_gcm never calls final(), so a
 *   forged ciphertext "decrypts" without complaint.
 */
import { wechatNotification } from "../../schemas/payments";
import { createDecipheriv, createPrivateKey, createPublicKey, createVerify, type KeyObject, X509Certificate } from "node:crypto";
import WxPay from "wechatpay-node-v3";
import { z } from "zod";
import { createWechatOAuth } from "./wechatOAuth";
import {
  type CallbackRejectionCode,
  type CallbackReply,
  type CreatedPayment,
  type GatewayOrder,
  GatewayError,
  type IncomingCallback,
  type JsapiPayParams,
  type PaymentFlow,
  type PaymentGateway,
  type RefundRequest,
  type RefundState,
  type TradeState,
  type VerifyCallbackResult,
} from "../gateway";

/** The keys WeChat Pay signs with: platform certificates by serial (older merchants), or one WeChat Pay public key. */
export type WechatPlatformKeys =
  | { mode: "certificate"; certificates: Record<string, string> }
  | { mode: "publicKey"; publicKeyId: string; publicKey: string };

export type WechatGatewayConfig = {
  appId: string;
  mchId: string;
  /** Serial number of the merchant API certificate (sent in every request's Authorization). */
  merchantSerialNo: string;
  /** PEM (apiclient_key.pem). */
  merchantPrivateKey: string;
  /** PEM (apiclient_cert.pem). */
  merchantCertificate: string;
  /** The 32-character APIv3 key: decrypts notification resources. */
  apiV3Key: string;
  platform: WechatPlatformKeys;
  /** https://api.mch.weixin.qq.com in production; the simulator's URL in sandbox mode. */
  baseUrl: string;
  /** Where WeChat Pay posts payment and refund notifications. */
  notifyUrl: string;
  timeoutMs: number;
  /** The flows the merchant has signed up for (Native, H5, JSAPI); default Native ("qr") alone. The first is the default. */
  flows?: ("qr" | "h5" | "jsapi")[];
  /** JSAPI: the official account's AppSecret and WeChat's OAuth base URLs (the simulator's in sandbox mode). */
  oauth?: { appSecret: string; authorizeUrl: string; apiBaseUrl: string };
  /** Sandbox only: the simulator's WeixinJSBridge stand-in, which the checkout loads outside WeChat (never in production). */
  jsBridgeShimUrl?: string;
};

/** WeChat Pay rejects requests, and we reject responses and callbacks, whose timestamp is further off than this. */
export const WECHAT_MAX_CLOCK_SKEW_MS = 5 * 60_000;

const WECHAT_API_ORIGIN = "https://api.mch.weixin.qq.com";
const SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048";
const GCM_TAG_BYTES = 16;
const USER_AGENT = "fiat-paymaster";

export function createWechatGateway(config: WechatGatewayConfig): PaymentGateway {
  assertMerchantIdentity(config);
  const platformKeys = loadPlatformKeys(config.platform);
  const apiV3Key = apiV3KeyBytes(config.apiV3Key);
  const client = new WxPay({
    appid: config.appId,
    mchid: config.mchId,
    serial_no: config.merchantSerialNo,
    publicKey: Buffer.from(config.merchantCertificate),
    privateKey: Buffer.from(config.merchantPrivateKey),
    key: config.apiV3Key,
    userAgent: USER_AGENT,
  });
  client.createHttp(createVerifiedHttp({ baseUrl: config.baseUrl, timeoutMs: config.timeoutMs, platformKeys }));

  const flows: readonly PaymentFlow[] = config.flows ?? ["qr"];
  if (flows.includes("jsapi") && !config.oauth) throw new Error("WeChat Pay JSAPI needs the official account's AppSecret (WECHAT_APP_SECRET) for OAuth");
  const payerIdentification =
    flows.includes("jsapi") && config.oauth ? createWechatOAuth({ appId: config.appId, ...config.oauth, timeoutMs: config.timeoutMs }) : undefined;

  return {
    provider: "wechat",
    flows,
    defaultFlow: flows[0]!,
    ...(payerIdentification ? { payerIdentification } : {}),

    async createPayment(order: GatewayOrder): Promise<CreatedPayment> {
      const flow = order.flow ?? flows[0]!;
      if (!flows.includes(flow)) throw new GatewayError(`WeChat Pay flow ${flow} is not enabled`, "wechat", "FLOW_NOT_ENABLED");
      const common = {
        description: order.subject,
        out_trade_no: order.orderId,
        time_expire: toWechatTime(order.expiresAt),
        notify_url: config.notifyUrl,
        amount: { total: toFenNumber(order.amountFen), currency: "CNY" },
      };
      if (flow === "h5") {
        const clientIp = order.payer?.clientIp;
        if (!clientIp) throw new GatewayError("WeChat Pay H5 needs the payer's client IP", "wechat", "PARAM_ERROR");
        // scene_info.payer_client_ip must be the payer's real IP: WeChat compares it with where the h5_url is opened
        // (the SDK's typing makes h5_info.app_name required; WeChat's H5 API documents it as optional)
        const h5Info = { type: "Wap" } as Parameters<WxPay["transactions_h5"]>[0]["scene_info"]["h5_info"];
        const output = await client.transactions_h5({ ...common, scene_info: { payer_client_ip: clientIp, h5_info: h5Info } });
        if (output.status !== 200) throw apiError("H5 order", output);
        return { payUrl: parseResponse(h5ResponseSchema, output, "H5 order").h5_url };
      }
      if (flow === "jsapi") {
        const openId = order.payer?.openId;
        if (!openId) throw new GatewayError("WeChat Pay JSAPI needs the payer's openid", "wechat", "PARAM_ERROR");
        // the SDK answers the prepay_id already turned into WeixinJSBridge's parameters, paySign made with our key
        // over `appId\ntimeStamp\nnonceStr\npackage\n`
        const output = await client.transactions_jsapi({ ...common, payer: { openid: openId } });
        if (output.status !== 200) throw apiError("JSAPI order", output);
        const params = parseResponse(jsapiParamsSchema, output, "JSAPI order");
        if (params.appId !== config.appId) throw new GatewayError("WeChat Pay JSAPI parameters name another appId", "wechat");
        return { jsapiParams: params };
      }
      const output = await client.transactions_native(common);
      if (output.status !== 200) throw apiError("Native order", output);
      return { qrCode: parseResponse(nativeResponseSchema, output, "Native order").code_url };
    },

    async queryTrade(orderId: string): Promise<TradeState> {
      const output = await client.query({ out_trade_no: orderId });
      if (errorCodeOf(output) === "ORDER_NOT_EXIST") return { status: "not_found" };
      if (output.status !== 200) throw apiError("trade query", output);
      const trade = parseResponse(tradeSchema, output, "trade query");
      assertOurTrade(trade, config, orderId);
      return tradeStateFrom(trade);
    },

    async closeTrade(orderId: string): Promise<void> {
      const output = await client.close(orderId);
      if (output.status === 204 || output.status === 200) return;
      const code = errorCodeOf(output);
      if (code === "ORDER_NOT_EXIST" || code === "ORDER_CLOSED") return;
      throw apiError("trade close", output);
    },

    async refund(request: RefundRequest): Promise<RefundState> {
      const output = await client.refunds({
        out_trade_no: request.orderId,
        out_refund_no: request.refundId,
        ...(request.reason ? { reason: request.reason } : {}),
        notify_url: config.notifyUrl,
        amount: { refund: toFenNumber(request.amountFen), total: toFenNumber(request.totalFen), currency: "CNY" },
      });
      if (output.status === 200) return refundStateFrom(parseResponse(refundSchema, output, "refund"), request.orderId, request.refundId);
      // A 4xx business answer (NOT_ENOUGH, INVALID_REQUEST, ...) is final: no refund was created. Auth failures,
      // rate limits and 5xx are not: the caller retries with the same refundId.
      if (businessErrorCode(output) !== undefined) return { status: "failed", reason: describeApiError(output) };
      throw apiError("refund", output);
    },

    async queryRefund(orderId: string, refundId: string): Promise<RefundState> {
      const output = await client.find_refunds(refundId);
      if (errorCodeOf(output) === "RESOURCE_NOT_EXISTS") return { status: "not_found" };
      if (output.status !== 200) throw apiError("refund query", output);
      return refundStateFrom(parseResponse(refundSchema, output, "refund query"), orderId, refundId);
    },

    downloadBill: () => Promise.reject(new GatewayError("WeChat Pay bill download: not built yet (issue 13 in progress)", "wechat")),

    async verifyCallback(callback: IncomingCallback): Promise<VerifyCallbackResult> {
      return verifyNotification(callback, { platformKeys, apiV3Key, appId: config.appId, mchId: config.mchId });
    },

    successReply(): CallbackReply {
      return { status: 204, contentType: "application/json", body: "" };
    },

    failureReply(message: string): CallbackReply {
      // WeChat Pay retries on any 4xx/5xx; its documented failure body is {"code":"FAIL","message":...}.
      return { status: 500, contentType: "application/json", body: JSON.stringify({ code: "FAIL", message: message.slice(0, 256) }) };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration checks: a wrong key or serial should fail at start, not as SIGN_ERROR on the first payment.

function assertMerchantIdentity(config: WechatGatewayConfig): void {
  const certificate = new X509Certificate(config.merchantCertificate);
  if (normalizeSerial(certificate.serialNumber) !== normalizeSerial(config.merchantSerialNo)) {
    throw new Error(`WeChat merchantSerialNo ${config.merchantSerialNo} is not the merchant certificate's serial ${certificate.serialNumber}`);
  }
  const derivedPublicKey = createPublicKey(createPrivateKey(config.merchantPrivateKey));
  if (!derivedPublicKey.equals(certificate.publicKey)) {
    throw new Error("WeChat merchantPrivateKey does not belong to merchantCertificate");
  }
  const baseUrl = new URL(config.baseUrl);
  if (baseUrl.protocol !== "https:" && baseUrl.protocol !== "http:") throw new Error(`WeChat baseUrl must be http(s): ${config.baseUrl}`);
  if (!(config.timeoutMs > 0)) throw new Error("WeChat timeoutMs must be positive");
}

function apiV3KeyBytes(apiV3Key: string): Buffer {
  const key = Buffer.from(apiV3Key, "utf8");
  if (key.length !== 32) throw new Error(`WeChat apiV3Key must be 32 bytes (AES-256): got ${key.length}`);
  return key;
}

type PlatformKey = { key: KeyObject; validFrom?: Date; validTo?: Date };
type PlatformKeyring = Map<string, PlatformKey>;

/** Serials are hex (case and leading zeros vary between tools); public key ids are matched the same way for simplicity. */
function normalizeSerial(serial: string): string {
  return serial.trim().toUpperCase().replace(/^0+(?=.)/, "");
}

function loadPlatformKeys(platform: WechatPlatformKeys): PlatformKeyring {
  if (platform.mode === "publicKey") {
    return new Map([[normalizeSerial(platform.publicKeyId), { key: createPublicKey(platform.publicKey) }]]);
  }
  const keys: PlatformKeyring = new Map();
  for (const [serial, pem] of Object.entries(platform.certificates)) {
    const certificate = new X509Certificate(pem);
    if (normalizeSerial(certificate.serialNumber) !== normalizeSerial(serial)) {
      throw new Error(`WeChat platform certificate listed as ${serial} has serial ${certificate.serialNumber}`);
    }
    keys.set(normalizeSerial(serial), {
      key: certificate.publicKey,
      validFrom: new Date(certificate.validFrom),
      validTo: new Date(certificate.validTo),
    });
  }
  if (keys.size === 0) throw new Error("WeChat platform certificates: none configured");
  return keys;
}

// ---------------------------------------------------------------------------------------------------------------
// Signatures: WeChat Pay signs `timestamp\nnonce\nbody\n` with RSA-SHA256, on responses and notifications alike.

type SignedMessage = {
  serial?: string;
  timestamp?: string;
  nonce?: string;
  signature?: string;
  signatureType?: string;
  body: string;
};

type SignatureCheck =
  | { ok: true }
  | { ok: false; code: Extract<CallbackRejectionCode, "bad_signature" | "unknown_certificate" | "stale_timestamp">; detail: string };

function checkWechatSignature(keys: PlatformKeyring, message: SignedMessage, now: Date): SignatureCheck {
  const { serial, timestamp, nonce, signature } = message;
  if (!serial || !timestamp || !nonce || !signature) {
    return { ok: false, code: "bad_signature", detail: "Wechatpay-Serial/-Timestamp/-Nonce/-Signature header missing" };
  }
  if (message.signatureType && message.signatureType !== SIGNATURE_TYPE) {
    return { ok: false, code: "bad_signature", detail: `unsupported Wechatpay-Signature-Type ${message.signatureType}` };
  }
  const platformKey = keys.get(normalizeSerial(serial));
  if (!platformKey) return { ok: false, code: "unknown_certificate", detail: `Wechatpay-Serial ${serial} is not a configured platform key` };
  if ((platformKey.validFrom && now < platformKey.validFrom) || (platformKey.validTo && now > platformKey.validTo)) {
    return { ok: false, code: "unknown_certificate", detail: `platform certificate ${serial} is not valid now` };
  }
  if (!isFreshTimestamp(timestamp, now)) {
    return { ok: false, code: "stale_timestamp", detail: `Wechatpay-Timestamp ${timestamp} is more than 5 minutes from now` };
  }
  if (!verifyRsaSha256(platformKey.key, `${timestamp}\n${nonce}\n${message.body}\n`, signature)) {
    return { ok: false, code: "bad_signature", detail: "Wechatpay-Signature does not verify" };
  }
  return { ok: true };
}

function isFreshTimestamp(timestamp: string, now: Date): boolean {
  if (!/^\d{1,12}$/.test(timestamp)) return false;
  return Math.abs(now.getTime() - Number(timestamp) * 1000) <= WECHAT_MAX_CLOCK_SKEW_MS;
}

function verifyRsaSha256(key: KeyObject, data: string, signatureBase64: string): boolean {
  try {
    return createVerify("RSA-SHA256").update(data, "utf8").verify(key, signatureBase64, "base64");
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP: the client's own layer is replaced so that no unverified response reaches it.

type WxPayHttp = Parameters<WxPay["createHttp"]>[0];
type WxPayOutput = Awaited<ReturnType<WxPayHttp["get"]>>;

function createVerifiedHttp(options: { baseUrl: string; timeoutMs: number; platformKeys: PlatformKeyring }): WxPayHttp {
  const base = options.baseUrl.replace(/\/+$/, "");
  const send = async (method: "GET" | "POST", sdkUrl: string, headers: Record<string, unknown>, body?: string): Promise<WxPayOutput> => {
    // The client builds absolute production URLs and signs their path; we keep the path and change the origin.
    if (!sdkUrl.startsWith(WECHAT_API_ORIGIN)) throw new GatewayError(`unexpected WeChat Pay URL ${sdkUrl}`, "wechat");
    const response = await fetchWithTimeout(`${base}${sdkUrl.slice(WECHAT_API_ORIGIN.length)}`, {
      method,
      headers: requestHeaders(headers),
      body,
      timeoutMs: options.timeoutMs,
    });
    const text = await response.text();
    const check = checkWechatSignature(options.platformKeys, { ...signatureHeadersOf(response.headers), body: text }, new Date());
    if (!check.ok) throw new GatewayError(`WeChat Pay response (HTTP ${response.status}) rejected: ${check.code}: ${check.detail}`, "wechat");
    const data = text ? parseJsonOrThrow(text, response.status) : undefined;
    return response.ok ? { status: response.status, data } : { status: response.status, error: data };
  };
  return {
    get: (url, headers) => send("GET", url, headers),
    post: (url, params, headers) => send("POST", url, headers, JSON.stringify(params)),
    upload: () => Promise.reject(new GatewayError("WeChat Pay uploads are not supported", "wechat")),
  };
}

function requestHeaders(sdkHeaders: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(sdkHeaders)) {
    // fetch negotiates (and decodes) compression itself.
    if (name.toLowerCase() !== "accept-encoding" && value !== undefined) headers[name] = String(value);
  }
  return headers;
}

async function fetchWithTimeout(
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; timeoutMs: number },
): Promise<globalThis.Response> {
  try {
    return await fetch(url, { method: init.method, headers: init.headers, body: init.body, signal: AbortSignal.timeout(init.timeoutMs) });
  } catch (error) {
    throw new GatewayError(`WeChat Pay unreachable: ${describeFetchFailure(error, init.timeoutMs)}`, "wechat");
  }
}

function describeFetchFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  const cause = error instanceof Error ? (error.cause as { code?: string } | undefined) : undefined;
  return cause?.code ?? (error instanceof Error ? error.message : String(error));
}

function signatureHeadersOf(headers: Headers): Omit<SignedMessage, "body"> {
  return {
    serial: headers.get("wechatpay-serial") ?? undefined,
    timestamp: headers.get("wechatpay-timestamp") ?? undefined,
    nonce: headers.get("wechatpay-nonce") ?? undefined,
    signature: headers.get("wechatpay-signature") ?? undefined,
    signatureType: headers.get("wechatpay-signature-type") ?? undefined,
  };
}

function parseJsonOrThrow(text: string, status: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new GatewayError(`WeChat Pay response (HTTP ${status}) is not JSON`, "wechat");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// API responses.

const errorBodySchema = z.object({ code: z.string(), message: z.string().optional() });
const nativeResponseSchema = z.object({ code_url: z.string().min(1) });
const h5ResponseSchema = z.object({ h5_url: z.url() });
const jsapiParamsSchema: z.ZodType<JsapiPayParams> = z.object({
  appId: z.string().min(1),
  timeStamp: z.string().regex(/^\d+$/),
  nonceStr: z.string().min(1),
  package: z.string().regex(/^prepay_id=\S+$/),
  signType: z.literal("RSA"),
  paySign: z.string().min(1),
});
const tradeSchema = z.object({
  appid: z.string(),
  mchid: z.string(),
  out_trade_no: z.string(),
  transaction_id: z.string().optional(),
  trade_state: z.string(),
  success_time: z.string().optional(),
  amount: z.object({ total: z.number().int().nonnegative().optional(), currency: z.literal("CNY").optional() }).optional(),
});
const refundSchema = z.object({
  refund_id: z.string(),
  out_refund_no: z.string(),
  out_trade_no: z.string(),
  status: z.string(),
});

function errorCodeOf(output: WxPayOutput): string | undefined {
  const parsed = errorBodySchema.safeParse(output.error);
  return parsed.success ? parsed.data.code : undefined;
}

function describeApiError(output: WxPayOutput): string {
  const parsed = errorBodySchema.safeParse(output.error);
  return parsed.success ? `${parsed.data.code}: ${parsed.data.message ?? ""}`.trim() : `HTTP ${output.status}`;
}

/**
 * WeChat's business answers (4xx with a code: ORDERPAID, NOT_ENOUGH, ...) carry their code as gatewayCode; its
 * failures (5xx, SIGN_ERROR, rate limits) do not, so callers (and the circuit breaker) treat them as the gateway failing.
 */
function apiError(operation: string, output: WxPayOutput): GatewayError {
  return new GatewayError(`WeChat Pay ${operation} failed: HTTP ${output.status} ${describeApiError(output)}`, "wechat", businessErrorCode(output));
}

function businessErrorCode(output: WxPayOutput): string | undefined {
  const isBusinessAnswer = output.status >= 400 && output.status < 500 && output.status !== 401 && output.status !== 429;
  return isBusinessAnswer ? errorCodeOf(output) : undefined;
}

function parseResponse<T>(schema: z.ZodType<T>, output: WxPayOutput, operation: string): T {
  const parsed = schema.safeParse(output.data);
  if (!parsed.success) throw new GatewayError(`WeChat Pay ${operation} answer has an unexpected shape`, "wechat");
  return parsed.data;
}

function assertOurTrade(trade: z.infer<typeof tradeSchema>, config: WechatGatewayConfig, orderId: string): void {
  if (trade.out_trade_no !== orderId || trade.mchid !== config.mchId || trade.appid !== config.appId) {
    throw new GatewayError(`WeChat Pay answered a query for ${orderId} with another trade or merchant`, "wechat");
  }
}

function tradeStateFrom(trade: z.infer<typeof tradeSchema>): TradeState {
  switch (trade.trade_state) {
    // REFUND: paid, then (partly) refunded; the refunds are tracked on their own.
    case "SUCCESS":
    case "REFUND": {
      const total = trade.amount?.total;
      if (total === undefined || !trade.transaction_id) throw new GatewayError("WeChat Pay paid trade lacks amount or transaction_id", "wechat");
      return {
        status: "paid",
        amountFen: BigInt(total),
        gatewayTradeNo: trade.transaction_id,
        ...(trade.success_time ? { paidAt: new Date(trade.success_time) } : {}),
      };
    }
    case "NOTPAY":
    case "USERPAYING":
      return { status: "pending" };
    case "CLOSED":
    case "REVOKED":
    case "PAYERROR":
      return { status: "closed" };
    default:
      throw new GatewayError(`WeChat Pay trade_state ${trade.trade_state} is unknown`, "wechat");
  }
}

function refundStateFrom(refund: z.infer<typeof refundSchema>, orderId: string, refundId: string): RefundState {
  if (refund.out_trade_no !== orderId || refund.out_refund_no !== refundId) {
    throw new GatewayError(`WeChat Pay answered for refund ${refund.out_refund_no} of ${refund.out_trade_no}, not ${refundId} of ${orderId}`, "wechat");
  }
  switch (refund.status) {
    case "SUCCESS":
      return { status: "succeeded", gatewayRefundNo: refund.refund_id };
    case "PROCESSING":
      return { status: "pending", gatewayRefundNo: refund.refund_id };
    case "CLOSED":
      return { status: "failed", reason: "CLOSED: WeChat Pay closed the refund" };
    case "ABNORMAL":
      // The payer's bank refused the money and WeChat holds it until someone re-routes it in the merchant platform,
      // after which the refund reads SUCCESS. "failed" would give the quota back while the money may still go out.
      return { status: "pending", gatewayRefundNo: refund.refund_id };
    default:
      throw new GatewayError(`WeChat Pay refund status ${refund.status} is unknown`, "wechat");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Notifications.

// the notification envelope: the schema the OpenAPI document describes it with
const notificationSchema = wechatNotification;
const merchantFieldsSchema = z.object({ mchid: z.string().optional(), appid: z.string().optional() });
const transactionSchema = z.object({
  appid: z.string(),
  mchid: z.string(),
  out_trade_no: z.string(),
  transaction_id: z.string(),
  trade_state: z.string(),
  success_time: z.string().optional(),
  amount: z.object({ total: z.number().int().nonnegative(), currency: z.literal("CNY").optional() }),
});

type NotificationContext = { platformKeys: PlatformKeyring; apiV3Key: Buffer; appId: string; mchId: string };

function verifyNotification(callback: IncomingCallback, context: NotificationContext): VerifyCallbackResult {
  const signature = checkWechatSignature(context.platformKeys, { ...signatureHeadersFrom(callback.headers), body: callback.rawBody }, new Date());
  if (!signature.ok) return signature;

  const envelope = notificationSchema.safeParse(parseJson(callback.rawBody));
  if (!envelope.success) return reject("bad_request", "not a WeChat Pay v3 notification envelope");
  const plaintext = decryptResource(envelope.data.resource, context.apiV3Key);
  if (plaintext === undefined) return reject("decrypt_failed", "resource does not decrypt with our APIv3 key (GCM auth tag check failed)");
  const resource = parseJson(plaintext);

  const isTransaction = envelope.data.event_type === "TRANSACTION.SUCCESS" && envelope.data.resource.original_type === "transaction";
  const merchant = merchantFieldsSchema.safeParse(resource);
  if (!merchant.success) return reject("bad_request", "decrypted resource is not a JSON object");
  if (merchant.data.mchid !== context.mchId) return reject("merchant_mismatch", `mchid ${merchant.data.mchid ?? "(none)"} is not ours`);
  // Transactions carry our appid; refund resources carry only mchid.
  if (isTransaction && merchant.data.appid !== context.appId) return reject("merchant_mismatch", `appid ${merchant.data.appid ?? "(none)"} is not ours`);
  if (!isTransaction) return reject("not_a_payment", `${envelope.data.event_type} (${envelope.data.resource.original_type ?? "?"}) is not a payment`);

  const transaction = transactionSchema.safeParse(resource);
  if (!transaction.success) return reject("bad_request", "decrypted transaction lacks out_trade_no, transaction_id, trade_state or a CNY amount");
  const { out_trade_no, transaction_id, trade_state, success_time, amount } = transaction.data;
  return {
    ok: true,
    notification: {
      orderId: out_trade_no,
      amountFen: BigInt(amount.total),
      paid: trade_state === "SUCCESS",
      gatewayStatus: trade_state,
      gatewayTradeNo: transaction_id,
      ...(success_time ? { paidAt: new Date(success_time) } : {}),
      payload: { id: envelope.data.id, event_type: envelope.data.event_type, create_time: envelope.data.create_time, resource },
    },
  };
}

function reject(code: CallbackRejectionCode, detail: string): VerifyCallbackResult {
  return { ok: false, code, detail };
}

function signatureHeadersFrom(headers: IncomingCallback["headers"]): Omit<SignedMessage, "body"> {
  const single = (name: string) => {
    const value = headers[name];
    return typeof value === "string" ? value : undefined;
  };
  return {
    serial: single("wechatpay-serial"),
    timestamp: single("wechatpay-timestamp"),
    nonce: single("wechatpay-nonce"),
    signature: single("wechatpay-signature"),
    signatureType: single("wechatpay-signature-type"),
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** AEAD_AES_256_GCM: base64(ciphertext ‖ 16-byte tag), the nonce string's bytes as IV. Undefined unless the tag checks. */
function decryptResource(resource: { ciphertext: string; nonce: string; associated_data?: string }, apiV3Key: Buffer): string | undefined {
  try {
    const sealed = Buffer.from(resource.ciphertext, "base64");
    if (sealed.length <= GCM_TAG_BYTES) return undefined;
    const decipher = createDecipheriv("aes-256-gcm", apiV3Key, Buffer.from(resource.nonce, "utf8"), { authTagLength: GCM_TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
    decipher.setAAD(Buffer.from(resource.associated_data ?? "", "utf8"));
    const plaintext = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - GCM_TAG_BYTES)), decipher.final()]);
    return plaintext.toString("utf8");
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Values.

/** WeChat wants integer fen as a JSON number. */
function toFenNumber(fen: bigint): number {
  if (fen <= 0n || fen > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`amount ${fen} fen is out of range`);
  return Number(fen);
}

/** RFC 3339 in Beijing time, the form WeChat documents (`2018-06-08T10:34:56+08:00`). */
export function toWechatTime(date: Date): string {
  const beijing = new Date(date.getTime() + 8 * 3_600_000);
  return `${beijing.toISOString().slice(0, 19)}+08:00`;
}
