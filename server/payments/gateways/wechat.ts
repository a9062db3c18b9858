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
 *   forged ciphertext "decrypts" without complaint;
 * - every request names the platform key we verify with in Wechatpay-Serial (the client sends it only on calls with
 *   encrypted fields), so WeChat answers under a key we hold — during a migration, the WeChat Pay public key;
 * - platform certificates are refreshed from GET /v3/certificates (every 12 hours, and at most once a minute for a
 *   serial we do not hold), the answer verified with a key we already trust and each certificate's GCM tag checked;
 * - daily bills are downloaded, their SHA1 checked over the file and parsed exactly (wechatBill.ts).
 */
import { wechatNotification } from "../../schemas/payments";
import { createDecipheriv, createHash, createPrivateKey, createPublicKey, createVerify, type KeyObject, X509Certificate } from "node:crypto";
import { gunzipSync } from "node:zlib";
import WxPay from "wechatpay-node-v3";
import { z } from "zod";
import { parseWechatFundFlowBill, parseWechatTradeBill } from "./wechatBill";
import { createWechatOAuth } from "./wechatOAuth";
import {
  type BillDownload,
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

/**
 * The keys WeChat Pay signs with: platform certificates by serial (older merchants), one WeChat Pay public key, or —
 * while a merchant migrates from the first to the second — both at once, each message verified with the key its
 * Wechatpay-Serial names.
 */
export type WechatPlatformKeys =
  | { mode: "certificate"; certificates: Record<string, string> }
  | { mode: "publicKey"; publicKeyId: string; publicKey: string }
  | { mode: "certificateAndPublicKey"; certificates: Record<string, string>; publicKeyId: string; publicKey: string };

/** How often platform certificates are fetched again from GET /v3/certificates (certificate modes only). */
export type CertificateRefresh = {
  /** Default 12 hours (WeChat publishes a new certificate well before it signs with it). */
  everyMs?: number;
  /** At most one fetch per this long because of a serial we do not hold; default one minute. */
  unknownSerialMinIntervalMs?: number;
};

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
  /** Platform certificate refresh; `false` keeps the configured certificates only. */
  certificateRefresh?: CertificateRefresh | false;
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
const DEFAULT_CERTIFICATE_REFRESH_MS = 12 * 3_600_000;
const DEFAULT_UNKNOWN_SERIAL_REFRESH_MS = 60_000;
const BILL_DOWNLOAD_PATH = "/v3/billdownload/file";

export function createWechatGateway(config: WechatGatewayConfig): PaymentGateway {
  assertMerchantIdentity(config);
  const apiV3Key = apiV3KeyBytes(config.apiV3Key);
  const platformKeys = new PlatformKeyring(config.platform, config.certificateRefresh);
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
  platformKeys.downloadWith(() => downloadPlatformCertificates(client, apiV3Key));

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
      const code = businessErrorCode(output);
      // NOT_ENOUGH: the merchant's available balance is short. Nothing was refunded, nothing is final: the same
      // out_refund_no is tried again once the account is topped up. Failing it would give the quota back for money
      // the payer is still owed.
      if (code === "NOT_ENOUGH") return { status: "pending", gatewayStatus: "NOT_ENOUGH" };
      // Any other 4xx business answer (INVALID_REQUEST for an over-refund, ...) is final: no refund was created.
      // Auth failures, rate limits and 5xx are not: the caller retries with the same refundId.
      if (code !== undefined) return { status: "failed", reason: describeApiError(output) };
      throw apiError("refund", output);
    },

    async queryRefund(orderId: string, refundId: string): Promise<RefundState> {
      const output = await client.find_refunds(refundId);
      if (errorCodeOf(output) === "RESOURCE_NOT_EXISTS") return { status: "not_found" };
      if (output.status !== 200) throw apiError("refund query", output);
      return refundStateFrom(parseResponse(refundSchema, output, "refund query"), orderId, refundId);
    },

    async downloadBill(date: string): Promise<BillDownload> {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new RangeError(`bill date must be YYYY-MM-DD: got ${date}`);
      const trade = await fetchBill(client, config.baseUrl, "trade", date);
      if (trade.status === "not_ready") return trade;
      const fundFlow = await fetchBill(client, config.baseUrl, "fundflow", date);
      if (fundFlow.status === "not_ready") return fundFlow;
      const parsed = trade.text === undefined ? { entries: [], summary: EMPTY_SUMMARY } : parseWechatTradeBill(trade.text);
      return {
        status: "ready",
        bill: {
          provider: "wechat",
          date,
          entries: parsed.entries,
          summary: parsed.summary,
          fundFlow: fundFlow.text === undefined ? EMPTY_FUND_FLOW : parseWechatFundFlowBill(fundFlow.text),
          source: {
            files: [trade.file, fundFlow.file],
            ...(trade.hash || fundFlow.hash ? { hash: [trade.hash, fundFlow.hash].filter(Boolean).join(" ") } : {}),
          },
        },
      };
    },

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

type PlatformKey = { key: KeyObject; validFrom?: Date; validTo?: Date; kind: "certificate" | "publicKey" };

/** Serials are hex (case and leading zeros vary between tools); public key ids are matched the same way for simplicity. */
function normalizeSerial(serial: string): string {
  return serial.trim().toUpperCase().replace(/^0+(?=.)/, "");
}

type DownloadedCertificate = { serial: string; pem: string };

/**
 * The platform keys we trust, by serial: the configured ones, and the certificates fetched from /v3/certificates.
 * A fetch is made when the last one is older than `everyMs`, and for a serial we do not hold at most once per
 * `unknownSerialMinIntervalMs` — a serial in an inbound header is the sender's choice, so it must not make us call out
 * at will. The public key never changes here: a new one is a configuration change.
 */
class PlatformKeyring {
  private readonly keys = new Map<string, PlatformKey>();
  private readonly refresh: Required<CertificateRefresh> | undefined;
  private download?: () => Promise<DownloadedCertificate[]>;
  private lastFetchAt = 0;
  private lastUnknownFetchAt = -Infinity;
  private inFlight?: Promise<void>;
  /** What every request names in Wechatpay-Serial: the public key when we have one, else the newest certificate. */
  private requestSerialValue: string;

  constructor(platform: WechatPlatformKeys, refresh: CertificateRefresh | false | undefined) {
    if (platform.mode !== "publicKey") {
      for (const [serial, pem] of Object.entries(platform.certificates)) this.addCertificate(pem, serial);
      if (this.keys.size === 0) throw new Error("WeChat platform certificates: none configured");
    }
    if (platform.mode !== "certificate") {
      this.keys.set(normalizeSerial(platform.publicKeyId), { key: createPublicKey(platform.publicKey), kind: "publicKey" });
    }
    this.requestSerialValue = platform.mode === "certificate" ? this.newestCertificateSerial()! : platform.publicKeyId;
    this.refresh =
      platform.mode === "publicKey" || refresh === false
        ? undefined
        : { everyMs: refresh?.everyMs ?? DEFAULT_CERTIFICATE_REFRESH_MS, unknownSerialMinIntervalMs: refresh?.unknownSerialMinIntervalMs ?? DEFAULT_UNKNOWN_SERIAL_REFRESH_MS };
    // configured certificates count as fresh: the first fetch is due `everyMs` after start
    this.lastFetchAt = Date.now();
  }

  downloadWith(download: () => Promise<DownloadedCertificate[]>): void {
    this.download = download;
  }

  get(serial: string): PlatformKey | undefined {
    return this.keys.get(normalizeSerial(serial));
  }

  requestSerial(): string {
    return this.requestSerialValue;
  }

  /** The key for `serial`, fetching certificates first when a fetch is due or the serial is new (rate-limited). */
  async resolve(serial: string): Promise<PlatformKey | undefined> {
    // While a fetch is under way (its own answer comes through here too), the keys we hold are what we have.
    if (this.refresh && this.download && !this.inFlight) {
      const now = Date.now();
      const known = this.get(serial) !== undefined;
      if (now - this.lastFetchAt >= this.refresh.everyMs) await this.fetch();
      else if (!known && now - this.lastUnknownFetchAt >= this.refresh.unknownSerialMinIntervalMs) {
        this.lastUnknownFetchAt = now;
        await this.fetch();
      }
    }
    return this.get(serial);
  }

  /** One fetch at a time; a failed fetch keeps the keys we have (and is retried when next due). */
  private fetch(): Promise<void> {
    this.inFlight ??= (async () => {
      try {
        this.lastFetchAt = Date.now();
        for (const { serial, pem } of await this.download!()) this.addCertificate(pem, serial);
        if (!this.get(this.requestSerialValue) || this.get(this.requestSerialValue)!.kind === "certificate") {
          this.requestSerialValue = this.newestCertificateSerial() ?? this.requestSerialValue;
        }
      } catch {
        // the next request that needs it tries again; the configured keys still work meanwhile
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  private addCertificate(pem: string, serial: string): void {
    const certificate = new X509Certificate(pem);
    if (normalizeSerial(certificate.serialNumber) !== normalizeSerial(serial)) {
      throw new Error(`WeChat platform certificate listed as ${serial} has serial ${certificate.serialNumber}`);
    }
    this.keys.set(normalizeSerial(serial), {
      key: certificate.publicKey,
      validFrom: new Date(certificate.validFrom),
      validTo: new Date(certificate.validTo),
      kind: "certificate",
    });
  }

  private newestCertificateSerial(): string | undefined {
    let newest: [string, PlatformKey] | undefined;
    for (const entry of this.keys) {
      if (entry[1].kind === "certificate" && (!newest || entry[1].validFrom! > newest[1].validFrom!)) newest = entry;
    }
    return newest?.[0];
  }
}

const certificatesSchema = z.object({
  data: z.array(
    z.object({
      serial_no: z.string().min(1),
      encrypt_certificate: z.object({ algorithm: z.literal("AEAD_AES_256_GCM"), nonce: z.string(), associated_data: z.string().optional(), ciphertext: z.string() }),
    }),
  ),
});

/**
 * GET /v3/certificates through the client (its HTTP layer is ours, so the answer's signature has been checked with a
 * key we already trust), then each certificate decrypted again here with the GCM tag checked.
 */
async function downloadPlatformCertificates(client: WxPay, apiV3Key: Buffer): Promise<DownloadedCertificate[]> {
  const items = await client.get_certificates(apiV3Key.toString("utf8"));
  const parsed = certificatesSchema.safeParse({ data: items });
  if (!parsed.success) throw new GatewayError("WeChat Pay /v3/certificates answer has an unexpected shape", "wechat");
  return parsed.data.data.map((item) => {
    const pem = decryptResource(item.encrypt_certificate, apiV3Key);
    if (pem === undefined) throw new GatewayError(`WeChat Pay platform certificate ${item.serial_no} does not decrypt (GCM tag)`, "wechat");
    return { serial: item.serial_no, pem };
  });
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

async function checkWechatSignature(keys: PlatformKeyring, message: SignedMessage, now: Date): Promise<SignatureCheck> {
  const { serial, timestamp, nonce, signature } = message;
  if (!serial || !timestamp || !nonce || !signature) {
    return { ok: false, code: "bad_signature", detail: "Wechatpay-Serial/-Timestamp/-Nonce/-Signature header missing" };
  }
  if (message.signatureType && message.signatureType !== SIGNATURE_TYPE) {
    return { ok: false, code: "bad_signature", detail: `unsupported Wechatpay-Signature-Type ${message.signatureType}` };
  }
  // cheap checks first: a stale message must not make us fetch certificates
  if (!isFreshTimestamp(timestamp, now)) {
    return { ok: false, code: "stale_timestamp", detail: `Wechatpay-Timestamp ${timestamp} is more than 5 minutes from now` };
  }
  const platformKey = await keys.resolve(serial);
  if (!platformKey) return { ok: false, code: "unknown_certificate", detail: `Wechatpay-Serial ${serial} is not a configured platform key` };
  if ((platformKey.validFrom && now < platformKey.validFrom) || (platformKey.validTo && now > platformKey.validTo)) {
    return { ok: false, code: "unknown_certificate", detail: `platform certificate ${serial} is not valid now` };
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
    const path = sdkUrl.slice(WECHAT_API_ORIGIN.length);
    const response = await fetchWithTimeout(`${base}${path}`, {
      method,
      headers: { ...requestHeaders(headers), "Wechatpay-Serial": options.platformKeys.requestSerial() },
      body,
      timeoutMs: options.timeoutMs,
    });
    // The bill file is WeChat's one unsigned 2xx answer: its integrity is the hash_value of the signed 申请账单 answer.
    if (response.ok && method === "GET" && path.startsWith(`${BILL_DOWNLOAD_PATH}?`)) {
      return { status: response.status, data: Buffer.from(await response.arrayBuffer()) };
    }
    const text = await response.text();
    const signatureHeaders = signatureHeadersOf(response.headers);
    const unsigned = !signatureHeaders.serial && !signatureHeaders.signature;
    // WeChat signs only answers to requests whose signature it verified: an error without any signature (401
    // SIGN_ERROR, a 5xx from its front end) is genuine as an error, but its code is not trusted as a business answer.
    // An unsigned 2xx is never WeChat's.
    if (unsigned && !response.ok) {
      const error = text ? parseJsonOrUndefined(text) : undefined;
      return { status: response.status, error: { ...(isRecord(error) ? error : {}), [UNSIGNED]: true } };
    }
    const check = await checkWechatSignature(options.platformKeys, { ...signatureHeaders, body: text }, new Date());
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

/** Marks an error body that came without a signature. */
const UNSIGNED = Symbol("unsigned");

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function requestHeaders(sdkHeaders: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(sdkHeaders)) {
    // fetch negotiates (and decodes) compression itself; Wechatpay-Serial is ours to set.
    const lower = name.toLowerCase();
    if (lower !== "accept-encoding" && lower !== "wechatpay-serial" && value !== undefined) headers[name] = String(value);
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
  success_time: z.string().optional(),
});

function isUnsigned(output: WxPayOutput): boolean {
  return isRecord(output.error) && (output.error as Record<symbol, unknown>)[UNSIGNED] === true;
}

/** The error code of a signed error answer: an unsigned one may say anything, so it decides nothing. */
function errorCodeOf(output: WxPayOutput): string | undefined {
  if (isUnsigned(output)) return undefined;
  const parsed = errorBodySchema.safeParse(output.error);
  return parsed.success ? parsed.data.code : undefined;
}

function describeApiError(output: WxPayOutput): string {
  const parsed = errorBodySchema.safeParse(output.error);
  const unsigned = isUnsigned(output) ? " (unsigned)" : "";
  return parsed.success ? `${`${parsed.data.code}: ${parsed.data.message ?? ""}`.trim()}${unsigned}` : `HTTP ${output.status}${unsigned}`;
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
  const state = refundStateOf(refund.status, refund.refund_id, refund.success_time);
  if (!state) throw new GatewayError(`WeChat Pay refund status ${refund.status} is unknown`, "wechat");
  return state;
}

/** A refund's status word (query answer `status`, notification `refund_status`) as our RefundState. */
function refundStateOf(status: string, refundNo: string, successTime: string | undefined): Exclude<RefundState, { status: "not_found" }> | undefined {
  switch (status) {
    case "SUCCESS": {
      const succeededAt = successTime === undefined ? undefined : parseWechatTime(successTime);
      return { status: "succeeded", gatewayRefundNo: refundNo, ...(succeededAt ? { succeededAt } : {}) };
    }
    case "PROCESSING":
      return { status: "pending", gatewayRefundNo: refundNo };
    case "CLOSED":
      return { status: "failed", reason: "CLOSED: WeChat Pay closed the refund" };
    case "ABNORMAL":
      // The payer's bank refused the money and WeChat holds it until someone re-routes it in the merchant platform,
      // after which the refund reads SUCCESS. "failed" would give the quota back while the money may still go out.
      return { status: "pending", gatewayRefundNo: refundNo, gatewayStatus: "ABNORMAL" };
    default:
      return undefined;
  }
}

function parseWechatTime(text: string): Date | undefined {
  const at = new Date(text);
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/.test(text) && !Number.isNaN(at.getTime()) ? at : undefined;
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

const REFUND_EVENTS: Record<string, string> = { "REFUND.SUCCESS": "SUCCESS", "REFUND.ABNORMAL": "ABNORMAL", "REFUND.CLOSED": "CLOSED" };
const refundResourceSchema = z.object({
  mchid: z.string(),
  out_trade_no: z.string(),
  transaction_id: z.string(),
  out_refund_no: z.string(),
  refund_id: z.string(),
  refund_status: z.enum(["SUCCESS", "ABNORMAL", "CLOSED"]),
  success_time: z.string().optional(),
  user_received_account: z.string().optional(),
  amount: z.object({
    total: z.number().int().nonnegative(),
    refund: z.number().int().positive(),
    payer_total: z.number().int().nonnegative().optional(),
    payer_refund: z.number().int().nonnegative().optional(),
  }),
});

async function verifyNotification(callback: IncomingCallback, context: NotificationContext): Promise<VerifyCallbackResult> {
  const signature = await checkWechatSignature(context.platformKeys, { ...signatureHeadersFrom(callback.headers), body: callback.rawBody }, new Date());
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
  const refundEvent = envelope.data.resource.original_type === "refund" ? REFUND_EVENTS[envelope.data.event_type] : undefined;
  if (refundEvent) return verifiedRefund(envelope.data, refundEvent, resource);
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

/** REFUND.SUCCESS / ABNORMAL / CLOSED, its signature, decryption and mchid already checked. */
function verifiedRefund(envelope: z.infer<typeof notificationSchema>, eventStatus: string, resource: unknown): VerifyCallbackResult {
  const parsed = refundResourceSchema.safeParse(resource);
  if (!parsed.success) return reject("bad_request", "decrypted refund lacks out_trade_no, out_refund_no, refund_id, refund_status or amount");
  const refund = parsed.data;
  if (refund.refund_status !== eventStatus) return reject("bad_request", `${envelope.event_type} carries refund_status ${refund.refund_status}`);
  const state = refundStateOf(refund.refund_status, refund.refund_id, refund.success_time)!;
  return {
    ok: true,
    kind: "refund",
    refund: {
      orderId: refund.out_trade_no,
      refundId: refund.out_refund_no,
      state,
      gatewayStatus: refund.refund_status,
      amountFen: BigInt(refund.amount.refund),
      payload: { id: envelope.id, event_type: envelope.event_type, create_time: envelope.create_time, resource: refund },
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

// ---------------------------------------------------------------------------------------------------------------
// Bills.

const EMPTY_SUMMARY = { paymentCount: 0, paymentFen: 0n, refundCount: 0, refundFen: 0n, feeMilliFen: 0n };
const EMPTY_FUND_FLOW = { incomeCount: 0, incomeFen: 0n, expenseCount: 0, expenseFen: 0n };
const billApplicationSchema = z.object({ hash_type: z.literal("SHA1"), hash_value: z.string().regex(/^[0-9a-fA-F]{40}$/), download_url: z.url() });

type FetchedBill =
  | { status: "ready"; file: string; hash?: string; /** undefined: NO_STATEMENT_EXIST, a day without trades */ text?: string }
  | { status: "not_ready"; detail: string };

/**
 * 申请交易账单 (ALL) or 申请资金账单 (BASIC), gzip, then the file from download_url: merchant-signed like every request,
 * answered unsigned, so the SHA1 WeChat gave in the signed answer (over the bill itself, before gzip) is what vouches
 * for it.
 */
async function fetchBill(client: WxPay, baseUrl: string, kind: "trade" | "fundflow", date: string): Promise<FetchedBill> {
  const operation = kind === "trade" ? "trade bill application" : "fund-flow bill application";
  const file = kind === "trade" ? `tradebill ${date} ALL` : `fundflowbill ${date} BASIC`;
  const output =
    kind === "trade"
      ? await client.tradebill({ bill_date: date, bill_type: "ALL", tar_type: "GZIP" })
      : await client.fundflowbill({ bill_date: date, account_type: "BASIC", tar_type: "GZIP" });
  const code = errorCodeOf(output);
  if (code === "STATEMENT_CREATING") return { status: "not_ready", detail: `WeChat Pay ${file}: STATEMENT_CREATING (the bill is being generated)` };
  if (code === "NO_STATEMENT_EXIST") return { status: "ready", file };
  if (output.status !== 200) throw apiError(operation, output);
  const application = parseResponse(billApplicationSchema, output, operation);
  const download = await client.downloadBill(apiUrlFor(application.download_url, baseUrl));
  if (download.status !== 200 || !Buffer.isBuffer(download.data)) throw apiError(`${file} download`, download);
  const text = gunzipBill(download.data, file);
  const actual = createHash("sha1").update(text).digest("hex");
  if (actual !== application.hash_value.toLowerCase()) {
    throw new GatewayError(`WeChat Pay ${file}: SHA1 of the downloaded bill is ${actual}, the bill application said ${application.hash_value}`, "wechat", "BILL_HASH_MISMATCH");
  }
  return { status: "ready", file, hash: application.hash_value.toLowerCase(), text: text.toString("utf8") };
}

/**
 * The client signs the path of a production URL; a download_url on our configured base (the simulator's) is given
 * to it as that path under the production origin, which our HTTP layer maps back. Any other host is refused: our
 * signed Authorization goes nowhere but WeChat Pay.
 */
function apiUrlFor(downloadUrl: string, baseUrl: string): string {
  const url = new URL(downloadUrl);
  const base = new URL(baseUrl);
  const onOrigin = url.origin === WECHAT_API_ORIGIN || url.origin === base.origin;
  if (!onOrigin || url.pathname !== BILL_DOWNLOAD_PATH) throw new GatewayError(`WeChat Pay download_url ${url.origin}${url.pathname} is not WeChat Pay's bill download`, "wechat");
  return `${WECHAT_API_ORIGIN}${url.pathname}${url.search}`;
}

function gunzipBill(bytes: Buffer, file: string): Buffer {
  try {
    return gunzipSync(bytes);
  } catch {
    throw new GatewayError(`WeChat Pay ${file}: the download is not gzip`, "wechat", "BILL_INVALID");
  }
}
