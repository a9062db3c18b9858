/**
 * A local WeChat Pay v3 (Native) for sandbox mode and tests: the real `wechatpay-node-v3` client talks to it
 * unchanged except for the base URL. Real crypto throughout, with keys of its own (generateWechatSandbox):
 * - it verifies each request's `Authorization: WECHATPAY2-SHA256-RSA2048 ...` with the merchant certificate;
 * - it signs every response and notification with the platform key (`Wechatpay-*` headers), naming either the
 *   platform certificate's serial or the WeChat Pay public key id;
 * - notifications carry the transaction AES-256-GCM-encrypted with the APIv3 key, and are retried on WeChat's
 *   schedule (time-compressed on request) through the NotificationDispatcher, faults included;
 * - `/payer/wechat/<out_trade_no>` (the code_url) is a page with the amount and Pay / Cancel.
 */
import { type KeyObject, createCipheriv, createHash, createSign, createVerify, generateKeyPair, randomBytes, randomInt, randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import { promisify } from "node:util";
import express, { type NextFunction, type Request, type Response, Router } from "express";
import forge from "node-forge";
import { z } from "zod";
import { toWechatTime, type WechatGatewayConfig } from "../../server/payments/gateways/wechat";
import { type NotificationFaults, NotificationDispatcher, WECHAT_RETRY_SCHEDULE_MS } from "./notifier";
import type { BillFault, ProviderSimulator, SimulatedTrade, SimulatorClock } from "./types";
import { type FundFlowLine, renderFundFlowBill, renderTradeBill, type TradeBillPayment, type TradeBillRefund } from "./wechatBill";

// ---------------------------------------------------------------------------------------------------------------
// Sandbox identity.

/** Everything a merchant and WeChat Pay hold, freshly generated. PEM strings. */
export type WechatSandbox = {
  mchId: string;
  appId: string;
  apiV3Key: string;
  merchantPrivateKey: string;
  merchantCertificate: string;
  merchantSerialNo: string;
  platformPrivateKey: string;
  platformCertificate: string;
  platformSerialNo: string;
  /** The same platform key as `platformCertificate`'s, as a bare "WeChat Pay public key". */
  platformPublicKey: string;
  platformPublicKeyId: string;
  /** The official account's AppSecret, for WeChat's OAuth (JSAPI's openid). */
  appSecret: string;
};

const generateRsaKeyPair = promisify(generateKeyPair);
const CERTIFICATE_VALIDITY_MS = 5 * 365 * 86_400_000;

export async function generateWechatSandbox(): Promise<WechatSandbox> {
  const rsa2048 = {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  } as const;
  const [merchant, platform] = await Promise.all([generateRsaKeyPair("rsa", rsa2048), generateRsaKeyPair("rsa", rsa2048)]);
  const mchId = `1${randomDigits(9)}`;
  const merchantCertificate = issueSelfSignedCertificate(merchant, { commonName: mchId, organization: "fiat-paymaster sandbox merchant" });
  const platformCertificate = issueSelfSignedCertificate(platform, { commonName: "WeChat Pay sandbox platform", organization: "Tenpay.com" });
  return {
    mchId,
    appId: `wx${randomBytes(8).toString("hex")}`,
    apiV3Key: randomAlphanumeric(32),
    merchantPrivateKey: merchant.privateKey,
    merchantCertificate: merchantCertificate.pem,
    merchantSerialNo: merchantCertificate.serialNo,
    platformPrivateKey: platform.privateKey,
    platformCertificate: platformCertificate.pem,
    platformSerialNo: platformCertificate.serialNo,
    platformPublicKey: platform.publicKey,
    platformPublicKeyId: `PUB_KEY_ID_01${mchId}${randomDigits(14)}`,
    appSecret: randomBytes(16).toString("hex"),
  };
}

function issueSelfSignedCertificate(
  keys: { publicKey: string; privateKey: string },
  subject: { commonName: string; organization: string },
): { pem: string; serialNo: string } {
  // 20 bytes like WeChat's serials; the first nibble is 1–7 so the DER integer is positive with no leading zero.
  const serial = randomBytes(20);
  serial[0] = 0x10 + (serial[0]! % 0x70);
  const serialNo = serial.toString("hex").toUpperCase();
  const certificate = forge.pki.createCertificate();
  certificate.publicKey = forge.pki.publicKeyFromPem(keys.publicKey);
  certificate.serialNumber = serialNo;
  certificate.validity.notBefore = new Date(Date.now() - 60_000);
  certificate.validity.notAfter = new Date(Date.now() + CERTIFICATE_VALIDITY_MS);
  const attributes = [
    { name: "commonName", value: subject.commonName },
    { name: "organizationName", value: subject.organization },
    { name: "countryName", value: "CN" },
  ];
  certificate.setSubject(attributes);
  certificate.setIssuer(attributes);
  certificate.sign(forge.pki.privateKeyFromPem(keys.privateKey), forge.md.sha256.create());
  return { pem: forge.pki.certificateToPem(certificate), serialNo };
}

/** A gateway configuration that talks to a simulator holding this sandbox. */
export function wechatSandboxGatewayConfig(
  sandbox: WechatSandbox,
  options: { baseUrl: string; notifyUrl: string; platformMode?: "certificate" | "publicKey" | "certificateAndPublicKey"; timeoutMs?: number },
): WechatGatewayConfig {
  const certificates = { [sandbox.platformSerialNo]: sandbox.platformCertificate };
  const publicKey = { publicKeyId: sandbox.platformPublicKeyId, publicKey: sandbox.platformPublicKey };
  return {
    appId: sandbox.appId,
    mchId: sandbox.mchId,
    merchantSerialNo: sandbox.merchantSerialNo,
    merchantPrivateKey: sandbox.merchantPrivateKey,
    merchantCertificate: sandbox.merchantCertificate,
    apiV3Key: sandbox.apiV3Key,
    platform:
      options.platformMode === "publicKey"
        ? { mode: "publicKey", ...publicKey }
        : options.platformMode === "certificateAndPublicKey"
          ? { mode: "certificateAndPublicKey", certificates, ...publicKey }
          : { mode: "certificate", certificates },
    baseUrl: options.baseUrl,
    notifyUrl: options.notifyUrl,
    timeoutMs: options.timeoutMs ?? 5_000,
    flows: ["qr", "h5", "jsapi"],
    oauth: { appSecret: sandbox.appSecret, authorizeUrl: `${options.baseUrl}${WECHAT_OAUTH_AUTHORIZE_PATH}`, apiBaseUrl: options.baseUrl },
    jsBridgeShimUrl: `${options.baseUrl}${WECHAT_JSBRIDGE_SHIM_PATH}`,
  };
}

/** Where the simulator answers as open.weixin.qq.com's OAuth authorize page, and its WeixinJSBridge stand-in. */
export const WECHAT_OAUTH_AUTHORIZE_PATH = "/connect/oauth2/authorize";
export const WECHAT_JSBRIDGE_SHIM_PATH = "/sim/wechat/jsbridge.js";

// ---------------------------------------------------------------------------------------------------------------
// Platform-side crypto, exported so tests can craft notifications (stale, foreign, broken) the simulator never sends.

/** The platform key as PEM, or parsed once (a KeyObject) by a caller that signs many messages. */
export type PlatformSigner = { privateKey: string | KeyObject; serial: string };

export function wechatPlatformSigner(sandbox: WechatSandbox, signWith: "certificate" | "publicKey" = "certificate"): PlatformSigner {
  return { privateKey: sandbox.platformPrivateKey, serial: signWith === "publicKey" ? sandbox.platformPublicKeyId : sandbox.platformSerialNo };
}

/** The `Wechatpay-*` headers WeChat Pay puts on responses and notifications: RSA-SHA256 over `timestamp\nnonce\nbody\n`. */
export function signWechatMessage(
  body: string,
  signer: PlatformSigner,
  options: { timestamp?: number; nonce?: string } = {},
): Record<string, string> {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = options.nonce ?? randomAlphanumeric(32);
  const signature = createSign("RSA-SHA256").update(`${timestamp}\n${nonce}\n${body}\n`, "utf8").sign(signer.privateKey, "base64");
  return {
    "Wechatpay-Timestamp": timestamp,
    "Wechatpay-Nonce": nonce,
    "Wechatpay-Serial": signer.serial,
    "Wechatpay-Signature": signature,
    "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
  };
}

export type EncryptedResource = {
  algorithm: "AEAD_AES_256_GCM";
  ciphertext: string;
  associated_data: string;
  original_type: string;
  nonce: string;
};

/** AEAD_AES_256_GCM as WeChat does it: key = the APIv3 key's bytes, IV = a 12-character nonce string, base64(ciphertext ‖ tag). */
export function encryptWechatResource(plaintext: string, apiV3Key: string, originalType: string): EncryptedResource {
  const nonce = randomAlphanumeric(12);
  const cipher = createCipheriv("aes-256-gcm", Buffer.from(apiV3Key, "utf8"), Buffer.from(nonce, "utf8"));
  cipher.setAAD(Buffer.from(originalType, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return { algorithm: "AEAD_AES_256_GCM", ciphertext: ciphertext.toString("base64"), associated_data: originalType, original_type: originalType, nonce };
}

export type WechatEvent = {
  eventType: "TRANSACTION.SUCCESS" | "REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED";
  summary: string;
  originalType: "transaction" | "refund";
};
export const TRANSACTION_SUCCESS: WechatEvent = { eventType: "TRANSACTION.SUCCESS", summary: "支付成功", originalType: "transaction" };
export const REFUND_SUCCESS: WechatEvent = { eventType: "REFUND.SUCCESS", summary: "退款成功", originalType: "refund" };
export const REFUND_ABNORMAL: WechatEvent = { eventType: "REFUND.ABNORMAL", summary: "退款异常", originalType: "refund" };
export const REFUND_CLOSED: WechatEvent = { eventType: "REFUND.CLOSED", summary: "退款关闭", originalType: "refund" };
const REFUND_EVENTS = { SUCCESS: REFUND_SUCCESS, ABNORMAL: REFUND_ABNORMAL, CLOSED: REFUND_CLOSED } as const;

/** A notification body: the envelope with `resource` encrypted. */
export function buildWechatNotification(apiV3Key: string, event: WechatEvent, resource: object): string {
  return JSON.stringify({
    id: randomUUID(),
    create_time: toWechatTime(new Date()),
    resource_type: "encrypt-resource",
    event_type: event.eventType,
    summary: event.summary,
    resource: encryptWechatResource(JSON.stringify(resource), apiV3Key, event.originalType),
  });
}

/** The `tamper` fault: one ciphertext byte changed after signing, so the signature no longer matches. */
export function tamperWithCiphertext(body: string): string {
  const notification = JSON.parse(body) as { resource: { ciphertext: string } };
  const bytes = Buffer.from(notification.resource.ciphertext, "base64");
  bytes[0] = bytes[0]! ^ 0x01;
  notification.resource.ciphertext = bytes.toString("base64");
  return JSON.stringify(notification);
}

// ---------------------------------------------------------------------------------------------------------------
// The simulator.

export type WechatSimulatorOptions = {
  /** Business time (see SimulatorClock); default the real clock. */
  clock?: SimulatorClock;
  sandbox: WechatSandbox;
  /** Where payers reach this simulator: each code_url is `${publicUrl}/payer/wechat/<out_trade_no>`. */
  publicUrl: string;
  /** Multiplies WeChat's notification retry delays: 0.001 turns 15 s into 15 ms. Default 1. */
  timeScale?: number;
  faults?: NotificationFaults;
  /** Which platform identity responses and notifications name in Wechatpay-Serial. Default "certificate". */
  signWith?: "certificate" | "publicKey";
  /**
   * The merchant's registered domains (hostnames), as set in WeChat Pay's and the official account's consoles:
   * an h5_url opened from a page on another domain (its Referer), a redirect_url or an OAuth redirect_uri outside
   * them is refused, as WeChat refuses them. Default: 127.0.0.1 and localhost (the local stack and the tests).
   */
  registeredDomains?: readonly string[];
};

export const DEFAULT_REGISTERED_DOMAINS = ["127.0.0.1", "localhost"];

/** Whether `url` is an http(s) URL on one of the registered domains (or a subdomain of one). */
function onRegisteredDomain(url: string | undefined, domains: readonly string[]): boolean {
  if (!url) return false;
  try {
    const { protocol, hostname } = new URL(url);
    return (protocol === "http:" || protocol === "https:") && domains.some((d) => hostname === d || hostname.endsWith(`.${d}`));
  } catch {
    return false;
  }
}

const NOTIFY_TIMEOUT_MS = 5_000;

/** How the simulator settles the next refund it accepts (WeChat: SUCCESS, or ABNORMAL / CLOSED when the payer's side fails). */
export type WechatRefundOutcome = "SUCCESS" | "ABNORMAL" | "CLOSED";

/** The WeChat simulator with the controls only WeChat Pay has. */
export type WechatProviderSimulator = ProviderSimulator & {
  /** The refunds accepted from now on end this way (default SUCCESS), each with its REFUND.* notification. */
  setRefundOutcome(outcome: WechatRefundOutcome): void;
  /**
   * The merchant's available balance (基本账户可用余额), from which refunds are paid: a refund above it is refused
   * with 403 NOT_ENOUGH and can be retried with the same out_refund_no once topped up. Undefined: unlimited (default).
   */
  setAvailableBalance(fen: bigint | undefined): void;
  availableBalance(): bigint | undefined;
  /** Issues a new platform certificate and lists it in GET /v3/certificates; responses stay signed as before. */
  publishPlatformCertificate(): Promise<{ serialNo: string; certificate: string; privateKey: string }>;
  /** Signs responses and notifications from now on with a published certificate (by serial) or the WeChat Pay public key. */
  signWith(identity: { certificate: string } | "publicKey"): void;
  /** Requests to GET /v3/certificates so far (tests count refreshes). */
  certificateDownloads(): number;
};

type PlatformCertificate = { serialNo: string; certificate: string; privateKey: string; effectiveAt: Date; expiresAt: Date };

export function createWechatSimulator(options: WechatSimulatorOptions): WechatProviderSimulator {
  const clock: SimulatorClock = options.clock ?? (() => new Date());
  const certificates: PlatformCertificate[] = [
    {
      serialNo: options.sandbox.platformSerialNo,
      certificate: options.sandbox.platformCertificate,
      privateKey: options.sandbox.platformPrivateKey,
      effectiveAt: new Date(Date.now() - 60_000),
      expiresAt: new Date(Date.now() + CERTIFICATE_VALIDITY_MS),
    },
  ];
  // one object, mutated in place, so the routers and pending notifications follow a switch
  const signer: PlatformSigner = { ...wechatPlatformSigner(options.sandbox, options.signWith) };
  let certificateDownloads = 0;
  const notifier = new NotificationDispatcher({ scheduleMs: WECHAT_RETRY_SCHEDULE_MS, timeScale: options.timeScale ?? 1, faults: options.faults });
  const book = new WechatOrderBook(options.sandbox, options.publicUrl.replace(/\/+$/, ""), clock, (key, notifyUrl, body) => {
    const headers = signedHeaders(body, signer);
    notifier.dispatch({ key, send: ({ tampered }) => postNotification(notifyUrl, body, headers, tampered) });
  });
  const publicUrl = options.publicUrl.replace(/\/+$/, "");
  const oauth = new OAuthProvider(options.sandbox);
  const router = Router();
  const platform = {
    certificates: () => certificates,
    countDownload: () => void certificateDownloads++,
  };
  router.use("/v3", wechatApiRouter(book, options.sandbox, signer, oauth, platform));
  const domains = options.registeredDomains ?? DEFAULT_REGISTERED_DOMAINS;
  router.use("/payer/wechat", h5CashierRouter(book, domains));
  router.use("/payer/wechat", payerRouter(book, options.sandbox));
  router.use(oauthRouter(oauth, domains));
  router.use(jsBridgeRouter(book, options.sandbox, publicUrl));
  router.use(controlRouter(book));
  return {
    provider: "wechat",
    router,
    notifier,
    pay: async (orderId) => book.pay(orderId),
    cancel: async (orderId) => book.cancel(orderId),
    trade: (orderId) => book.snapshot(orderId),
    injectBillFault: async (fault: BillFault) => book.injectBillFault(fault),
    setRefundOutcome: (outcome) => void (book.refundOutcome = outcome),
    setAvailableBalance: (fen) => void (book.balanceFen = fen),
    availableBalance: () => book.balanceFen,
    async publishPlatformCertificate() {
      const keys = await generateRsaKeyPair("rsa", {
        modulusLength: 2048,
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
      });
      const issued = issueSelfSignedCertificate(keys, { commonName: "WeChat Pay sandbox platform", organization: "Tenpay.com" });
      certificates.push({
        serialNo: issued.serialNo,
        certificate: issued.pem,
        privateKey: keys.privateKey,
        effectiveAt: new Date(Date.now() - 60_000),
        expiresAt: new Date(Date.now() + CERTIFICATE_VALIDITY_MS),
      });
      return { serialNo: issued.serialNo, certificate: issued.pem, privateKey: keys.privateKey };
    },
    signWith(identity) {
      if (identity === "publicKey") {
        Object.assign(signer, wechatPlatformSigner(options.sandbox, "publicKey"));
        return;
      }
      const published = certificates.find((c) => c.serialNo === identity.certificate);
      if (!published) throw new Error(`no published platform certificate ${identity.certificate}`);
      Object.assign(signer, { privateKey: published.privateKey, serial: published.serialNo });
    },
    certificateDownloads: () => certificateDownloads,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Order book: WeChat's rules for trades and refunds, answering as its API does (WechatApiError for refusals).

type TradeType = "NATIVE" | "MWEB" | "JSAPI";
type WechatTrade = SimulatedTrade & {
  appId: string;
  description: string;
  codeUrl: string;
  payerOpenId: string;
  tradeType: TradeType;
  /** H5 and JSAPI: the prepay id, and when it was issued (an h5_url lives 5 minutes, a prepay_id 2 hours). */
  prepayId?: string;
  prepayIssuedAt?: Date;
  /** H5: the payer_client_ip the merchant reported. */
  payerClientIp?: string;
  /** Bill faults: paid without anyone being told (queries say NOTPAY), or billed one fen above what was paid. */
  silent?: boolean;
  billedFenDelta?: bigint;
};
type WechatRefundStatus = "PROCESSING" | "SUCCESS" | "ABNORMAL" | "CLOSED";
type WechatRefund = {
  refundId: string;
  outRefundNo: string;
  orderId: string;
  amountFen: bigint;
  createdAt: Date;
  status: WechatRefundStatus;
  succeededAt?: Date;
  /** Made in the merchant console, not through the API: nobody is notified. */
  console?: boolean;
};
/** A bill the merchant may download once, by token, for 30 seconds (real time), as WeChat's download_url. */
type BillFile = { bytes: Buffer; expiresAt: number };
type NativeOrderRequest = z.infer<typeof nativeOrderSchema>;
type RefundRequestBody = z.infer<typeof refundRequestSchema>;
/** Hands a signed-and-retried delivery of `body` to the notifier. */
type Notify = (key: string, notifyUrl: string, body: string) => void;

/** A WeChat Pay API refusal: HTTP status plus the `{code, message}` body. */
class WechatApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

class WechatOrderBook {
  private readonly trades = new Map<string, WechatTrade>();
  /** By out_refund_no, which WeChat keeps unique per merchant. */
  private readonly refunds = new Map<string, WechatRefund>();

  private readonly billFiles = new Map<string, BillFile>();
  /** How refunds accepted from now on end. */
  refundOutcome: WechatRefundOutcome = "SUCCESS";
  /** The merchant's available balance; undefined: refunds are never short of money. */
  balanceFen: bigint | undefined;

  constructor(
    private readonly sandbox: WechatSandbox,
    private readonly publicUrl: string,
    private readonly clock: SimulatorClock,
    private readonly notify: Notify,
  ) {}

  /** Trades lapse lazily, as WeChat reports them: an unpaid trade past time_expire (business time) is CLOSED from then on. */
  find(orderId: string): WechatTrade | undefined {
    const trade = this.trades.get(orderId);
    if (trade?.status === "pending" && trade.expiresAt && trade.expiresAt.getTime() <= this.clock().getTime()) trade.status = "closed";
    return trade;
  }

  require(orderId: string): WechatTrade {
    const trade = this.find(orderId);
    if (!trade) throw new WechatApiError(404, "ORDER_NOT_EXIST", "订单不存在");
    return trade;
  }

  snapshot(orderId: string): SimulatedTrade | undefined {
    const trade = this.find(orderId);
    if (!trade) return undefined;
    const { amountFen, status, gatewayTradeNo, notifyUrl, createdAt, expiresAt, paidAt, refundedFen, tradeType, payerClientIp } = trade;
    return { orderId, amountFen, status, gatewayTradeNo, notifyUrl, createdAt, expiresAt, paidAt, refundedFen, tradeType, ...(payerClientIp ? { payerClientIp } : {}) };
  }

  createNativeOrder(order: NativeOrderRequest): { code_url: string } {
    return { code_url: this.openTrade(order, "NATIVE").codeUrl };
  }

  /** H5下单: an h5_url to the cashier, valid 5 minutes (asking again with the same out_trade_no gives a fresh one). */
  createH5Order(order: H5OrderRequest): { h5_url: string } {
    const trade = this.openTrade(order, "MWEB");
    trade.payerClientIp = order.scene_info.payer_client_ip;
    this.issuePrepay(trade);
    return { h5_url: `${this.publicUrl}/payer/wechat/checkmweb?prepay_id=${trade.prepayId}&package=${randomDigits(10)}` };
  }

  /** JSAPI下单: a prepay_id (valid 2 hours) for the payer whose openid the merchant names. */
  createJsapiOrder(order: JsapiOrderRequest, knownOpenId: (openId: string) => boolean): { prepay_id: string } {
    if (!knownOpenId(order.payer.openid)) throw new WechatApiError(400, "PARAM_ERROR", "openid与appid不匹配");
    const trade = this.openTrade(order, "JSAPI");
    if (trade.payerOpenId !== order.payer.openid) throw new WechatApiError(400, "INVALID_REQUEST", "此商家订单号已用于其他用户");
    this.issuePrepay(trade);
    return { prepay_id: trade.prepayId! };
  }

  /** A trade by its prepay id, while that id is valid (h5_url 5 minutes, JSAPI prepay_id 2 hours). */
  findByPrepayId(prepayId: string): { trade?: WechatTrade; expired?: boolean } {
    const trade = [...this.trades.values()].find((t) => t.prepayId === prepayId);
    if (!trade) return {};
    this.find(trade.orderId);
    const lifetimeMs = trade.tradeType === "MWEB" ? H5_URL_LIFETIME_MS : PREPAY_ID_LIFETIME_MS;
    return { trade, expired: Date.now() - trade.prepayIssuedAt!.getTime() > lifetimeMs };
  }

  private issuePrepay(trade: WechatTrade): void {
    trade.prepayId = `wx${toWechatTime(new Date()).slice(0, 19).replace(/\D/g, "")}${randomAlphanumeric(18)}`;
    trade.prepayIssuedAt = new Date();
  }

  private openTrade(order: NativeOrderRequest & { payer?: { openid: string } }, tradeType: TradeType): WechatTrade {
    if (order.mchid !== this.sandbox.mchId || order.appid !== this.sandbox.appId) {
      throw new WechatApiError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配");
    }
    const existing = this.find(order.out_trade_no);
    if (existing) return repeatOrder(existing, order, tradeType);
    const expiresAt = order.time_expire === undefined ? undefined : parseWechatTime(order.time_expire);
    if (expiresAt && expiresAt.getTime() <= this.clock().getTime()) throw new WechatApiError(400, "INVALID_REQUEST", "time_expire已过期");
    const trade: WechatTrade = {
      orderId: order.out_trade_no,
      amountFen: BigInt(order.amount.total),
      status: "pending",
      gatewayTradeNo: `4200${randomDigits(24)}`,
      notifyUrl: order.notify_url,
      createdAt: this.clock(),
      ...(expiresAt ? { expiresAt } : {}),
      refundedFen: 0n,
      appId: order.appid,
      description: order.description,
      codeUrl: `${this.publicUrl}/payer/wechat/${encodeURIComponent(order.out_trade_no)}`,
      payerOpenId: order.payer?.openid ?? `o${randomAlphanumeric(27)}`,
      tradeType,
    };
    this.trades.set(trade.orderId, trade);
    return trade;
  }

  close(orderId: string, mchid: string): void {
    if (mchid !== this.sandbox.mchId) throw new WechatApiError(400, "INVALID_REQUEST", "mchid不匹配");
    const trade = this.require(orderId);
    if (trade.status === "paid") throw new WechatApiError(403, "ORDERPAID", "该订单已支付");
    trade.status = "closed";
  }

  /** The payer pressed Pay: paid now, and WeChat starts notifying the merchant. */
  pay(orderId: string): void {
    const trade = this.payable(orderId);
    trade.status = "paid";
    trade.paidAt = this.clock();
    const body = buildWechatNotification(this.sandbox.apiV3Key, TRANSACTION_SUCCESS, transactionView(trade, this.sandbox));
    this.notify(`TRANSACTION.SUCCESS:${orderId}`, trade.notifyUrl, body);
  }

  /**
   * The payer pressed Cancel (or closed the sheet): nothing happens at WeChat Pay. The trade stays NOTPAY, and the
   * payer may still scan and pay it, until time_expire passes or the merchant closes it.
   */
  cancel(orderId: string): void {
    const trade = this.find(orderId);
    if (!trade) throw new Error(`no WeChat trade ${orderId}`);
    if (trade.status === "paid") throw new Error(`WeChat trade ${orderId} is paid: it cannot be cancelled`);
  }

  private payable(orderId: string): WechatTrade {
    const trade = this.find(orderId);
    if (!trade) throw new Error(`no WeChat trade ${orderId}`);
    if (trade.status !== "pending") throw new Error(`WeChat trade ${orderId} is ${trade.status}: it cannot be paid`);
    return trade;
  }

  injectBillFault(fault: BillFault): void {
    if (fault.kind === "silent_payment") {
      // paid, and the money is in the bill; WeChat's notification and query both lost track of it
      const trade = this.payable(fault.orderId);
      trade.status = "paid";
      trade.paidAt = this.clock();
      trade.silent = true;
      return;
    }
    const trade = this.find(fault.orderId);
    if (!trade || trade.status !== "paid") throw new Error(`WeChat trade ${fault.orderId} is not paid: no bill line to change`);
    if (fault.kind === "amount_off_by_one_fen") {
      trade.billedFenDelta = 1n;
      return;
    }
    if (trade.refundedFen + fault.amountFen > trade.amountFen) throw new Error(`WeChat trade ${fault.orderId} has less than ${fault.amountFen} fen left to refund`);
    // a refund made in the merchant console: its 商户退款单号 is WeChat's own refund number, and no one is notified
    const refundId = newRefundId();
    const now = this.clock();
    trade.refundedFen += fault.amountFen;
    if (this.balanceFen !== undefined) this.balanceFen -= fault.amountFen;
    this.refunds.set(refundId, { refundId, outRefundNo: refundId, orderId: trade.orderId, amountFen: fault.amountFen, createdAt: now, status: "SUCCESS", succeededAt: now, console: true });
  }

  refund(request: RefundRequestBody): object {
    const previous = this.refunds.get(request.out_refund_no);
    if (previous) return this.repeatRefund(previous, request);
    const trade = request.out_trade_no ? this.find(request.out_trade_no) : this.findByTransactionId(request.transaction_id);
    if (!trade) throw new WechatApiError(404, "RESOURCE_NOT_EXISTS", "订单不存在");
    if (trade.status !== "paid" || trade.silent) throw new WechatApiError(400, "INVALID_REQUEST", "订单未支付");
    if (BigInt(request.amount.total) !== trade.amountFen) throw new WechatApiError(400, "INVALID_REQUEST", "订单金额与原订单不一致");
    const amountFen = BigInt(request.amount.refund);
    if (trade.refundedFen + amountFen > trade.amountFen) throw new WechatApiError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额");
    // WeChat checks the merchant's available balance when it accepts the refund; nothing is recorded when it is short
    if (this.balanceFen !== undefined && amountFen > this.balanceFen) throw new WechatApiError(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起");
    trade.refundedFen += amountFen;
    if (this.balanceFen !== undefined) this.balanceFen -= amountFen;
    const now = this.clock();
    const refund: WechatRefund = { refundId: newRefundId(), outRefundNo: request.out_refund_no, orderId: trade.orderId, amountFen, createdAt: now, status: "PROCESSING" };
    this.refunds.set(refund.outRefundNo, refund);
    const accepted = refundView(refund, trade);
    // WeChat answers PROCESSING and settles later; the simulator settles at once, so a query already has the outcome.
    this.settleRefund(refund, trade, request.notify_url);
    return accepted;
  }

  private settleRefund(refund: WechatRefund, trade: WechatTrade, notifyUrl: string | undefined): void {
    refund.status = this.refundOutcome;
    if (refund.status === "SUCCESS") refund.succeededAt = this.clock();
    if (refund.status === "CLOSED") {
      // the money never left: the trade may be refunded again, and the balance has it back
      trade.refundedFen -= refund.amountFen;
      if (this.balanceFen !== undefined) this.balanceFen += refund.amountFen;
    }
    if (notifyUrl) {
      const event = REFUND_EVENTS[refund.status as WechatRefundOutcome];
      const body = buildWechatNotification(this.sandbox.apiV3Key, event, refundResource(refund, trade, this.sandbox.mchId));
      this.notify(`${event.eventType}:${refund.outRefundNo}`, notifyUrl, body);
    }
  }

  queryRefund(outRefundNo: string): object {
    const refund = this.refunds.get(outRefundNo);
    if (!refund) throw new WechatApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在");
    return refundView(refund, this.trades.get(refund.orderId)!);
  }

  /** Same out_refund_no: the same refund, as long as it asks for the same thing. */
  private repeatRefund(refund: WechatRefund, request: RefundRequestBody): object {
    const trade = this.trades.get(refund.orderId)!;
    const sameTrade = request.out_trade_no ? request.out_trade_no === refund.orderId : request.transaction_id === trade.gatewayTradeNo;
    if (!sameTrade || BigInt(request.amount.refund) !== refund.amountFen) {
      throw new WechatApiError(400, "INVALID_REQUEST", "out_refund_no已用于其他退款");
    }
    return refundView(refund, trade);
  }

  // ---- bills -------------------------------------------------------------------------------------------

  /**
   * 申请交易账单 / 申请资金账单 for a Beijing day: the bill file's SHA1 (over the file itself, before gzip) and a
   * download_url. A day not over yet (business time) is STATEMENT_CREATING; a day without trades NO_STATEMENT_EXIST.
   */
  applyForBill(kind: "trade" | "fundflow", query: Record<string, unknown>): object {
    const date = typeof query.bill_date === "string" ? query.bill_date : "";
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(Date.parse(`${date}T00:00:00+08:00`))) {
      throw new WechatApiError(400, "PARAM_ERROR", "bill_date格式错误");
    }
    if (kind === "trade" && query.bill_type !== undefined && query.bill_type !== "ALL") throw new WechatApiError(400, "PARAM_ERROR", "bill_type仅模拟ALL");
    if (kind === "fundflow" && query.account_type !== undefined && query.account_type !== "BASIC") throw new WechatApiError(400, "PARAM_ERROR", "account_type仅模拟BASIC");
    if (query.tar_type !== undefined && query.tar_type !== "GZIP") throw new WechatApiError(400, "PARAM_ERROR", "tar_type仅支持GZIP");
    const start = new Date(`${date}T00:00:00+08:00`).getTime();
    if (this.clock().getTime() < start + 86_400_000) throw new WechatApiError(400, "STATEMENT_CREATING", "账单生成中");
    const lines = this.billLines(start, start + 86_400_000);
    if (lines.payments.length === 0 && lines.refunds.length === 0) throw new WechatApiError(400, "NO_STATEMENT_EXIST", "账单文件不存在");
    const file = kind === "trade" ? renderTradeBill(lines.payments, lines.refunds) : renderFundFlowBill(fundFlowLines(lines), 0n);
    const bytes = Buffer.from(file, "utf8");
    const token = randomAlphanumeric(32);
    this.billFiles.set(token, { bytes: query.tar_type === "GZIP" ? gzipSync(bytes) : bytes, expiresAt: Date.now() + BILL_DOWNLOAD_LIFETIME_MS });
    return {
      hash_type: "SHA1",
      hash_value: createHash("sha1").update(bytes).digest("hex"),
      download_url: `${this.publicUrl}/v3/billdownload/file?token=${token}`,
    };
  }

  downloadBill(token: unknown): Buffer {
    const file = typeof token === "string" ? this.billFiles.get(token) : undefined;
    if (!file || file.expiresAt < Date.now()) throw new WechatApiError(400, "INVALID_REQUEST", "下载链接已失效");
    return file.bytes;
  }

  private billLines(from: number, to: number): { payments: TradeBillPayment[]; refunds: TradeBillRefund[] } {
    const within = (at: Date | undefined) => at !== undefined && at.getTime() >= from && at.getTime() < to;
    const common = (trade: WechatTrade) => ({
      appId: trade.appId,
      mchId: this.sandbox.mchId,
      transactionId: trade.gatewayTradeNo,
      outTradeNo: trade.orderId,
      openId: trade.payerOpenId,
      tradeType: trade.tradeType,
      description: trade.description,
    });
    const payments = [...this.trades.values()]
      .filter((t) => t.status === "paid" && within(t.paidAt))
      .map((t) => {
        const amountFen = t.amountFen + (t.billedFenDelta ?? 0n);
        return { ...common(t), at: t.paidAt!, amountFen, feeMilliFen: feeMilliFen(amountFen) };
      });
    const refunds = [...this.refunds.values()]
      .filter((r) => r.status === "SUCCESS" && within(r.succeededAt))
      .map((r) => {
        const trade = this.trades.get(r.orderId)!;
        return { ...common(trade), at: r.succeededAt!, refundId: r.refundId, outRefundNo: r.outRefundNo, refundFen: r.amountFen, feeMilliFen: -feeMilliFen(r.amountFen) };
      });
    const byTime = (a: { at: Date }, b: { at: Date }) => a.at.getTime() - b.at.getTime();
    return { payments: payments.sort(byTime), refunds: refunds.sort(byTime) };
  }

  private findByTransactionId(transactionId: string | undefined): WechatTrade | undefined {
    return [...this.trades.values()].find((trade) => trade.gatewayTradeNo === transactionId);
  }
}

/** The same out_trade_no again: the same trade while it is payable with the same amount and trade type. */
function repeatOrder(trade: WechatTrade, order: NativeOrderRequest, tradeType: TradeType): WechatTrade {
  if (trade.status === "paid") throw new WechatApiError(403, "ORDERPAID", "该订单已支付");
  if (trade.status === "closed") throw new WechatApiError(400, "ORDER_CLOSED", "订单已关闭");
  if (trade.amountFen !== BigInt(order.amount.total) || trade.tradeType !== tradeType) throw new WechatApiError(403, "OUT_TRADE_NO_USED", "商户订单号重复");
  return trade;
}

const H5_URL_LIFETIME_MS = 5 * 60_000;
/** WeChat's download_url is good for 30 seconds. */
const BILL_DOWNLOAD_LIFETIME_MS = 30_000;

function newRefundId(): string {
  return `50${randomDigits(27)}`;
}

/** WeChat's 0.6 % fee, exact: 6 thousandths of a fen per fen. */
function feeMilliFen(fen: bigint): bigint {
  return fen * 6n;
}

/** The BASIC account's movements behind a day's trade bill: each payment comes in, each refund goes out. */
function fundFlowLines(lines: { payments: TradeBillPayment[]; refunds: TradeBillRefund[] }): FundFlowLine[] {
  const incomes = lines.payments.map((p): FundFlowLine => ({ at: p.at, businessNo: p.transactionId, flowNo: `${randomDigits(20)}`, kind: "income", amountFen: p.amountFen, voucherNo: p.outTradeNo }));
  const expenses = lines.refunds.map((r): FundFlowLine => ({ at: r.at, businessNo: r.refundId, flowNo: `${randomDigits(20)}`, kind: "expense", amountFen: r.refundFen, voucherNo: r.outRefundNo }));
  return [...incomes, ...expenses].sort((a, b) => a.at.getTime() - b.at.getTime());
}
const PREPAY_ID_LIFETIME_MS = 2 * 60 * 60_000;

// ---------------------------------------------------------------------------------------------------------------
// HTTP: the v3 API (mounted at /v3) and the payer page (mounted at /payer/wechat).

type PlatformDirectory = { certificates(): readonly PlatformCertificate[]; countDownload(): void };

function wechatApiRouter(book: WechatOrderBook, sandbox: WechatSandbox, signer: PlatformSigner, oauth: OAuthProvider, platform: PlatformDirectory): Router {
  const api = Router();
  // The merchant's signature covers the exact body bytes, so the API reads bodies as text.
  api.use(express.text({ type: () => true, limit: "64kb" }));
  api.use((req, res, next) => {
    const refusal = merchantSignatureRefusal(req, sandbox);
    // WeChat signs its answers only to requests whose signature it verified: a SIGN_ERROR comes unsigned.
    if (refusal) sendUnsigned(res, 401, { code: "SIGN_ERROR", message: refusal });
    else {
      res.locals.signer = requestedSigner(req.get("wechatpay-serial"), sandbox);
      next();
    }
  });
  api.get("/certificates", (_req, res) => {
    platform.countDownload();
    const data = platform.certificates().map((c) => ({
      serial_no: c.serialNo,
      effective_time: toWechatTime(c.effectiveAt),
      expire_time: toWechatTime(c.expiresAt),
      encrypt_certificate: encryptWechatResource(c.certificate, sandbox.apiV3Key, "certificate"),
    }));
    sendSigned(res, signer, 200, { data });
  });
  api.get("/bill/tradebill", (req, res) => {
    sendSigned(res, signer, 200, book.applyForBill("trade", req.query));
  });
  api.get("/bill/fundflowbill", (req, res) => {
    sendSigned(res, signer, 200, book.applyForBill("fundflow", req.query));
  });
  // the file itself comes unsigned (WeChat's documented exception): its integrity is the hash_value
  api.get("/billdownload/file", (req, res) => {
    res.status(200).type("application/octet-stream").set("Request-ID", randomUUID()).send(book.downloadBill(req.query.token));
  });
  api.post("/pay/transactions/native", (req, res) => {
    sendSigned(res, signer, 200, book.createNativeOrder(parseBody(nativeOrderSchema, req)));
  });
  api.post("/pay/transactions/h5", (req, res) => {
    sendSigned(res, signer, 200, book.createH5Order(parseBody(h5OrderSchema, req)));
  });
  api.post("/pay/transactions/jsapi", (req, res) => {
    sendSigned(res, signer, 200, book.createJsapiOrder(parseBody(jsapiOrderSchema, req), (openId) => oauth.knows(openId)));
  });
  api.get("/pay/transactions/out-trade-no/:orderId", (req, res) => {
    if (req.query.mchid !== sandbox.mchId) throw new WechatApiError(400, "INVALID_REQUEST", "mchid不匹配");
    sendSigned(res, signer, 200, transactionView(book.require(param(req, "orderId")), sandbox));
  });
  api.post("/pay/transactions/out-trade-no/:orderId/close", (req, res) => {
    book.close(param(req, "orderId"), parseBody(closeRequestSchema, req).mchid);
    sendSigned(res, signer, 204);
  });
  api.post("/refund/domestic/refunds", (req, res) => {
    sendSigned(res, signer, 200, book.refund(parseBody(refundRequestSchema, req)));
  });
  api.get("/refund/domestic/refunds/:outRefundNo", (req, res) => {
    sendSigned(res, signer, 200, book.queryRefund(param(req, "outRefundNo")));
  });
  api.use((_req: Request, res: Response) => sendSigned(res, signer, 404, { code: "NOT_FOUND", message: "no such API" }));
  api.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => sendApiError(res, signer, error));
  return api;
}

function payerRouter(book: WechatOrderBook, sandbox: WechatSandbox): Router {
  const payer = Router();
  payer.get("/:orderId", (req, res) => {
    const trade = book.find(param(req, "orderId"));
    if (!trade) res.status(404).type("html").send(payerMessagePage("Unknown order", "This QR code is not a WeChat Pay order."));
    else res.type("html").send(payerPage(trade, sandbox));
  });
  payer.post("/:orderId/:action", (req, res) => {
    const orderId = param(req, "orderId");
    const action = param(req, "action");
    if (action !== "pay" && action !== "cancel") {
      res.status(404).type("html").send(payerMessagePage("Not found", "No such action."));
      return;
    }
    try {
      if (action === "pay") book.pay(orderId);
      else book.cancel(orderId);
      res.type("html").send(payerMessagePage(action === "pay" ? "Paid" : "Cancelled", `Order ${orderId}`));
    } catch (error) {
      res.status(409).type("html").send(payerMessagePage("Not possible", error instanceof Error ? error.message : String(error)));
    }
  });
  return payer;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests.

const fen = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const outTradeNo = z.string().regex(/^[0-9A-Za-z_\-|*]{6,32}$/);
const nativeOrderSchema = z.object({
  appid: z.string(),
  mchid: z.string(),
  description: z.string().min(1).max(127),
  out_trade_no: outTradeNo,
  time_expire: z.string().optional(),
  notify_url: z.url(),
  amount: z.object({ total: fen, currency: z.literal("CNY").optional() }),
});
// H5: scene_info.payer_client_ip (IPv4 or IPv6, up to 45 characters) and h5_info.type are required
const h5OrderSchema = nativeOrderSchema.extend({
  scene_info: z.object({
    payer_client_ip: z.union([z.ipv4(), z.ipv6()]),
    device_id: z.string().max(32).optional(),
    h5_info: z.object({ type: z.enum(["iOS", "Android", "Wap"]), app_name: z.string().max(64).optional(), app_url: z.string().optional() }),
  }),
});
const jsapiOrderSchema = nativeOrderSchema.extend({ payer: z.object({ openid: z.string().min(1).max(128) }) });
type H5OrderRequest = z.infer<typeof h5OrderSchema>;
type JsapiOrderRequest = z.infer<typeof jsapiOrderSchema>;
const closeRequestSchema = z.object({ mchid: z.string() });
const refundRequestSchema = z
  .object({
    out_trade_no: outTradeNo.optional(),
    transaction_id: z.string().optional(),
    out_refund_no: z.string().regex(/^[0-9A-Za-z_\-|*@]{1,64}$/),
    reason: z.string().max(80).optional(),
    notify_url: z.url().optional(),
    amount: z.object({ refund: fen, total: fen, currency: z.literal("CNY") }),
  })
  .refine((request) => request.out_trade_no !== undefined || request.transaction_id !== undefined, "out_trade_no or transaction_id");

function parseBody<T>(schema: z.ZodType<T>, req: Request): T {
  let json: unknown;
  try {
    json = JSON.parse(typeof req.body === "string" ? req.body : "");
  } catch {
    throw new WechatApiError(400, "PARAM_ERROR", "请求体不是合法的JSON");
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new WechatApiError(400, "PARAM_ERROR", `参数错误: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function param(req: Request, name: string): string {
  const value = req.params[name];
  return typeof value === "string" ? value : "";
}

const AUTHORIZATION_SCHEME = "WECHATPAY2-SHA256-RSA2048 ";
const MAX_REQUEST_SKEW_MS = 5 * 60_000;

/** Why the merchant's Authorization does not hold, or undefined when it does. Mirrors WeChat's SIGN_ERROR checks. */
function merchantSignatureRefusal(req: Request, sandbox: WechatSandbox): string | undefined {
  const header = req.get("authorization");
  if (!header?.startsWith(AUTHORIZATION_SCHEME)) return "Authorization is not WECHATPAY2-SHA256-RSA2048";
  const fields = Object.fromEntries([...header.slice(AUTHORIZATION_SCHEME.length).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  const { mchid, nonce_str: nonce, timestamp, serial_no: serialNo, signature } = fields;
  if (!mchid || !nonce || !timestamp || !serialNo || !signature) return "Authorization lacks mchid, nonce_str, timestamp, serial_no or signature";
  if (mchid !== sandbox.mchId) return `mchid ${mchid} is not this merchant`;
  if (serialNo.toUpperCase() !== sandbox.merchantSerialNo.toUpperCase()) return `serial_no ${serialNo} is not the merchant certificate's`;
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() - Number(timestamp) * 1000) > MAX_REQUEST_SKEW_MS) return "timestamp is stale";
  // The client signs the path below its base URL; this router is mounted at /v3 of the simulator, wherever that is.
  const body = typeof req.body === "string" ? req.body : "";
  const message = `${req.method}\n/v3${req.url}\n${timestamp}\n${nonce}\n${body}\n`;
  if (!verifyRsaSha256(sandbox.merchantCertificate, message, signature)) return "signature does not verify with the merchant certificate";
  return undefined;
}

function verifyRsaSha256(certificatePem: string, message: string, signatureBase64: string): boolean {
  try {
    return createVerify("RSA-SHA256").update(message, "utf8").verify(certificatePem, signatureBase64, "base64");
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Responses.

/**
 * A request naming the WeChat Pay public key id in Wechatpay-Serial gets its answer signed with the public key's
 * private key (how a merchant migrating from platform certificates asks for it); otherwise WeChat signs with its
 * current identity.
 */
function requestedSigner(serial: string | undefined, sandbox: WechatSandbox): PlatformSigner | undefined {
  return serial === sandbox.platformPublicKeyId ? wechatPlatformSigner(sandbox, "publicKey") : undefined;
}

function sendSigned(res: Response, defaultSigner: PlatformSigner, status: number, body?: object): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  const signer = (res.locals.signer as PlatformSigner | undefined) ?? defaultSigner;
  res.status(status).set(signWechatMessage(text, signer)).set("Request-ID", randomUUID());
  if (text) res.type("application/json").send(text);
  else res.end();
}

function sendUnsigned(res: Response, status: number, body: object): void {
  res.status(status).set("Request-ID", randomUUID()).type("application/json").send(JSON.stringify(body));
}

function sendApiError(res: Response, signer: PlatformSigner, error: unknown): void {
  if (error instanceof WechatApiError) {
    sendSigned(res, signer, error.status, { code: error.code, message: error.message });
    return;
  }
  // body-parser's own refusals (too large, bad charset) carry a 4xx status.
  const status = typeof error === "object" && error !== null && "status" in error ? error.status : undefined;
  if (typeof status === "number" && status >= 400 && status < 500) {
    sendSigned(res, signer, 400, { code: "PARAM_ERROR", message: "请求无法解析" });
    return;
  }
  sendSigned(res, signer, 500, { code: "SYSTEM_ERROR", message: "系统错误" });
}

function tradeState(trade: WechatTrade): { trade_state: string; trade_state_desc: string } {
  if (trade.status === "closed") return { trade_state: "CLOSED", trade_state_desc: "订单已关闭" };
  if (trade.status === "pending" || trade.silent) return { trade_state: "NOTPAY", trade_state_desc: "订单未支付" };
  if (trade.refundedFen > 0n) return { trade_state: "REFUND", trade_state_desc: "订单发生过退款" };
  return { trade_state: "SUCCESS", trade_state_desc: "支付成功" };
}

/** The query answer, and (paid) the decrypted notification resource: the same transaction object. */
function transactionView(trade: WechatTrade, sandbox: WechatSandbox): object {
  const common = { appid: trade.appId, mchid: sandbox.mchId, out_trade_no: trade.orderId, trade_type: trade.tradeType, ...tradeState(trade), attach: "" };
  if (trade.status !== "paid" || trade.silent) return { ...common, amount: { total: Number(trade.amountFen), currency: "CNY", payer_currency: "CNY" } };
  return {
    ...common,
    transaction_id: trade.gatewayTradeNo,
    bank_type: "OTHERS",
    success_time: toWechatTime(trade.paidAt!),
    payer: { openid: trade.payerOpenId },
    amount: { total: Number(trade.amountFen), payer_total: Number(trade.amountFen), currency: "CNY", payer_currency: "CNY" },
  };
}

function refundView(refund: WechatRefund, trade: WechatTrade): object {
  const status = refund.status;
  const total = Number(trade.amountFen);
  const refunded = Number(refund.amountFen);
  return {
    refund_id: refund.refundId,
    out_refund_no: refund.outRefundNo,
    transaction_id: trade.gatewayTradeNo,
    out_trade_no: trade.orderId,
    channel: "ORIGINAL",
    user_received_account: "支付用户零钱",
    create_time: toWechatTime(refund.createdAt),
    ...(refund.succeededAt ? { success_time: toWechatTime(refund.succeededAt) } : {}),
    status,
    funds_account: "AVAILABLE",
    amount: {
      total,
      refund: refunded,
      payer_total: total,
      payer_refund: refunded,
      settlement_total: total,
      settlement_refund: refunded,
      discount_refund: 0,
      currency: "CNY",
    },
  };
}

/** What a REFUND.SUCCESS / ABNORMAL / CLOSED notification carries (decrypted); success_time only once it succeeded. */
function refundResource(refund: WechatRefund, trade: WechatTrade, mchId: string): object {
  return {
    mchid: mchId,
    transaction_id: trade.gatewayTradeNo,
    out_trade_no: trade.orderId,
    refund_id: refund.refundId,
    out_refund_no: refund.outRefundNo,
    refund_status: refund.status,
    ...(refund.succeededAt ? { success_time: toWechatTime(refund.succeededAt) } : {}),
    user_received_account: "支付用户零钱",
    amount: {
      total: Number(trade.amountFen),
      refund: Number(refund.amountFen),
      payer_total: Number(trade.amountFen),
      payer_refund: Number(refund.amountFen),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Notifications.

/**
 * Headers for one delivery attempt. Signed afresh once they are a minute old (retries span a day, and a merchant
 * rejects timestamps older than 5 minutes), but shared by the copies of one attempt, which are the same message.
 */
function signedHeaders(body: string, signer: PlatformSigner): () => Record<string, string> {
  let signed: { at: number; headers: Record<string, string> } | undefined;
  return () => {
    if (!signed || Date.now() - signed.at > 60_000) signed = { at: Date.now(), headers: signWechatMessage(body, signer) };
    return signed.headers;
  };
}

async function postNotification(url: string, body: string, headers: () => Record<string, string>, tampered: boolean): Promise<boolean> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "User-Agent": "Mozilla/4.0", ...headers() },
    body: tampered ? tamperWithCiphertext(body) : body,
    signal: AbortSignal.timeout(NOTIFY_TIMEOUT_MS),
  });
  await response.arrayBuffer();
  return response.status === 200 || response.status === 204;
}

// ---------------------------------------------------------------------------------------------------------------
// Payer page.

function payerPage(trade: WechatTrade, sandbox: WechatSandbox): string {
  const id = encodeURIComponent(trade.orderId);
  const payable = trade.status === "pending";
  return page(
    "WeChat Pay",
    `<p>Merchant ${escapeHtml(sandbox.mchId)}</p>
<p>${escapeHtml(trade.description)}</p>
<p class="amount">¥${formatYuan(trade.amountFen)}</p>
<p>Order ${escapeHtml(trade.orderId)}: ${escapeHtml(tradeState(trade).trade_state)}</p>
${payable ? `<form method="post" action="${id}/pay"><button type="submit">Pay</button></form>\n<form method="post" action="${id}/cancel"><button type="submit">Cancel</button></form>` : ""}`,
  );
}

function payerMessagePage(title: string, message: string): string {
  return page(title, `<p>${escapeHtml(message)}</p>`);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)} · WeChat Pay sandbox</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:0 auto;padding:1rem}h1{font-size:1.2rem;color:#07c160}.amount{font-size:2rem;font-weight:600}button{font-size:1rem;padding:.7rem 1.2rem;margin:.3rem 0;min-width:8rem}</style></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatYuan(fen: bigint): string {
  return `${fen / 100n}.${(fen % 100n).toString().padStart(2, "0")}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Values.

function parseWechatTime(text: string): Date {
  const time = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$/.test(text) || Number.isNaN(time)) {
    throw new WechatApiError(400, "PARAM_ERROR", "time_expire格式错误");
  }
  return new Date(time);
}

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomAlphanumeric(length: number): string {
  return Array.from({ length }, () => ALPHANUMERIC[randomInt(ALPHANUMERIC.length)]).join("");
}

function randomDigits(length: number): string {
  return Array.from({ length }, () => randomInt(10)).join("");
}

// ---------------------------------------------------------------------------------------------------------------
// The phone side: the H5 cashier behind h5_url, WeChat's OAuth2 (snsapi_base) and a WeixinJSBridge stand-in.

/**
 * `/payer/wechat/checkmweb?prepay_id=…` (as wx.tenpay.com's): the H5 cashier. After Pay (or on leaving) WeChat
 * sends the browser to the redirect_url the merchant appended to h5_url, URL-encoded; without one it stays. As
 * WeChat does, the cashier opens only from a page on one of the merchant's registered H5 domains (the Referer) and
 * returns only to one of them: anything else is "商家参数格式有误，请联系商家解决".
 */
function h5CashierRouter(book: WechatOrderBook, domains: readonly string[]): Router {
  const cashier = Router();
  const redirectOf = (req: Request): string | undefined => {
    const value = typeof req.query.redirect_url === "string" ? req.query.redirect_url : undefined;
    return value && /^https?:\/\//.test(value) ? value : undefined;
  };
  const lookup = (req: Request, res: Response): WechatTrade | undefined => {
    const { trade, expired } = book.findByPrepayId(typeof req.query.prepay_id === "string" ? req.query.prepay_id : "");
    if (!trade) res.status(404).type("html").send(payerMessagePage("Unknown payment", "This is not a WeChat Pay H5 link."));
    else if (expired) res.status(410).type("html").send(payerMessagePage("链接已过期", "This h5_url is older than 5 minutes: ask the merchant for a new one."));
    else return trade;
    return undefined;
  };
  cashier.get("/checkmweb", (req, res) => {
    const redirect = typeof req.query.redirect_url === "string" ? req.query.redirect_url : undefined;
    if (!onRegisteredDomain(req.get("referer"), domains) || (redirect !== undefined && !onRegisteredDomain(redirect, domains))) {
      res.status(403).type("html").send(payerMessagePage("商家参数格式有误，请联系商家解决", "The page that opened this h5_url (its Referer) or its redirect_url is not on the merchant's registered H5 payment domain."));
      return;
    }
    const trade = lookup(req, res);
    if (!trade) return;
    const query = new URLSearchParams({ prepay_id: trade.prepayId!, ...(redirectOf(req) ? { redirect_url: redirectOf(req)! } : {}) }).toString();
    const payable = trade.status === "pending";
    res.type("html").send(
      page(
        "WeChat Pay",
        `<p>${escapeHtml(trade.description)}</p>
<p class="amount" id="amount">¥${formatYuan(trade.amountFen)}</p>
<p id="status">${escapeHtml(tradeState(trade).trade_state)}</p>
${payable ? `<form method="post" action="checkmweb/pay?${escapeHtml(query)}"><button type="submit">Pay ¥${formatYuan(trade.amountFen)}</button></form>\n<form method="post" action="checkmweb/leave?${escapeHtml(query)}"><button type="submit">Cancel</button></form>` : ""}`,
      ),
    );
  });
  cashier.post("/checkmweb/:action", (req, res) => {
    const trade = lookup(req, res);
    if (!trade) return;
    const action = param(req, "action");
    try {
      if (action === "pay") book.pay(trade.orderId);
      else if (action !== "leave") throw new Error("no such action");
    } catch (error) {
      res.status(409).type("html").send(payerMessagePage("Not possible", error instanceof Error ? error.message : String(error)));
      return;
    }
    const back = redirectOf(req);
    if (back) res.redirect(303, back);
    else res.type("html").send(payerMessagePage(action === "pay" ? "Paid" : "Left", `Order ${trade.orderId}`));
  });
  return cashier;
}

/**
 * The WeChat-only controls over HTTP, for a simulator in another process (`npm start`, demos):
 * `PUT /sim/wechat/refund-outcome` `{"outcome":"SUCCESS"|"ABNORMAL"|"CLOSED"}` and
 * `PUT /sim/wechat/balance` `{"availableFen":"1000"}` (`null`: unlimited).
 */
function controlRouter(book: WechatOrderBook): Router {
  const router = Router();
  router.put("/sim/wechat/refund-outcome", express.json(), (req, res) => {
    const outcome = (req.body as { outcome?: unknown } | undefined)?.outcome;
    if (outcome !== "SUCCESS" && outcome !== "ABNORMAL" && outcome !== "CLOSED") {
      return void res.status(400).json({ error: "outcome must be SUCCESS, ABNORMAL or CLOSED" });
    }
    book.refundOutcome = outcome;
    res.json({ outcome });
  });
  router.put("/sim/wechat/balance", express.json(), (req, res) => {
    const value = (req.body as { availableFen?: unknown } | undefined)?.availableFen;
    if (value !== null && !((typeof value === "string" || typeof value === "number") && /^\d+$/.test(String(value)))) return void res.status(400).json({ error: "availableFen must be a whole number of fen or null" });
    book.balanceFen = value === null ? undefined : BigInt(value);
    res.json({ availableFen: book.balanceFen === undefined ? null : String(book.balanceFen) });
  });
  return router;
}

type OAuthCode = { appId: string; openId: string; expiresAt: number; used: boolean };
/** A code is good for 5 minutes and once, as WeChat's. */
const OAUTH_CODE_LIFETIME_MS = 5 * 60_000;

/** WeChat's web OAuth as the simulator plays it: one simulated WeChat user, whose openid for our appid is fixed. */
class OAuthProvider {
  readonly payerOpenId = `o${randomAlphanumeric(27)}`;
  private readonly codes = new Map<string, OAuthCode>();
  private readonly issued = new Set<string>();

  constructor(readonly sandbox: WechatSandbox) {}

  issueCode(): string {
    const code = randomAlphanumeric(32);
    this.codes.set(code, { appId: this.sandbox.appId, openId: this.payerOpenId, expiresAt: Date.now() + OAUTH_CODE_LIFETIME_MS, used: false });
    return code;
  }

  /** sns/oauth2/access_token: the answer WeChat gives (errors as HTTP 200 with errcode, like WeChat). */
  exchange(query: Record<string, unknown>): object {
    if (query.appid !== this.sandbox.appId) return { errcode: 40013, errmsg: "invalid appid" };
    if (query.secret !== this.sandbox.appSecret) return { errcode: 40125, errmsg: "invalid appsecret" };
    if (query.grant_type !== "authorization_code") return { errcode: 40002, errmsg: "invalid grant_type" };
    const code = typeof query.code === "string" ? this.codes.get(query.code) : undefined;
    if (!code || code.expiresAt < Date.now()) return { errcode: 40029, errmsg: "invalid code" };
    if (code.used) return { errcode: 40163, errmsg: "code been used" };
    code.used = true;
    this.issued.add(code.openId);
    return { access_token: randomAlphanumeric(64), expires_in: 7200, refresh_token: randomAlphanumeric(64), openid: code.openId, scope: "snsapi_base" };
  }

  /** Whether this openid belongs to our appid (WeChat refuses a JSAPI order for a stranger's openid). */
  knows(openId: string): boolean {
    return this.issued.has(openId);
  }
}

function oauthRouter(oauth: OAuthProvider, domains: readonly string[]): Router {
  const router = Router();
  // open.weixin.qq.com/connect/oauth2/authorize: snsapi_base authorizes silently and redirects with ?code=&state=
  router.get(WECHAT_OAUTH_AUTHORIZE_PATH, (req, res) => {
    const { appid, redirect_uri: redirectUri, response_type: responseType, scope, state } = req.query;
    const refuse = (code: number, why: string) => res.status(400).type("html").send(payerMessagePage("Oops! Something went wrong:(", `${code} ${why}`));
    if (appid !== oauth.sandbox.appId) return refuse(10016, "appid错误");
    if (responseType !== "code") return refuse(10004, "response_type错误");
    if (scope !== "snsapi_base" && scope !== "snsapi_userinfo") return refuse(10005, "scope参数错误或没有scope权限");
    if (typeof redirectUri !== "string" || !/^https?:\/\//.test(redirectUri)) return refuse(10003, "redirect_uri参数错误");
    // the 网页授权域名 set in the official account's console
    if (!onRegisteredDomain(redirectUri, domains)) return refuse(10003, "redirect_uri域名与后台配置不一致");
    if (state !== undefined && (typeof state !== "string" || !/^[a-zA-Z0-9]{0,128}$/.test(state))) return refuse(10009, "state参数错误");
    const back = new URL(redirectUri);
    back.searchParams.set("code", oauth.issueCode());
    back.searchParams.set("state", typeof state === "string" ? state : "");
    res.redirect(302, back.toString());
  });
  router.get("/sns/oauth2/access_token", (req, res) => {
    res.json(oauth.exchange(req.query));
  });
  return router;
}

/**
 * The WeixinJSBridge stand-in (sandbox only: the checkout loads it when /v1/config names it and no real bridge
 * exists). `invoke("getBrandWCPayRequest", params, cb)` has the simulator check the parameters as WeChat's client
 * does — appId ours, package a live prepay_id of that appId, signType RSA, paySign the merchant's RSA-SHA256 over
 * `appId\ntimeStamp\nnonceStr\npackage\n` checked with the merchant certificate — then shows Pay / Cancel; Pay
 * marks the trade paid (and WeChat Pay notifies the merchant), and cb gets get_brand_wcpay_request:ok|cancel|fail.
 */
function jsBridgeRouter(book: WechatOrderBook, sandbox: WechatSandbox, publicUrl: string): Router {
  const router = Router();
  const cors = (res: Response) => res.set("Access-Control-Allow-Origin", "*");
  router.get(WECHAT_JSBRIDGE_SHIM_PATH, (_req, res) => {
    res.type("application/javascript").set("Cache-Control", "no-store").send(jsBridgeShim(publicUrl));
  });
  router.post("/sim/wechat/jsapi/:action", express.text({ type: () => true, limit: "8kb" }), (req, res) => {
    cors(res);
    const checked = checkJsapiParams(book, sandbox, typeof req.body === "string" ? req.body : "");
    if (!checked.ok) return void res.status(400).json({ ok: false, error: checked.error });
    const { trade } = checked;
    const action = param(req, "action");
    if (action === "check") return void res.json({ ok: true, amount: formatYuan(trade.amountFen), description: trade.description });
    if (action !== "pay") return void res.status(404).json({ ok: false, error: "no such action" });
    try {
      book.pay(trade.orderId);
      res.json({ ok: true });
    } catch (error) {
      res.status(409).json({ ok: false, error: error instanceof Error ? error.message : String(error) });
    }
  });
  return router;
}

const jsapiParamsSchema = z.object({
  appId: z.string(),
  timeStamp: z.string().regex(/^\d{1,12}$/),
  nonceStr: z.string().min(1).max(32),
  package: z.string().regex(/^prepay_id=\S+$/),
  signType: z.string(),
  paySign: z.string().min(1),
});

function checkJsapiParams(book: WechatOrderBook, sandbox: WechatSandbox, body: string): { ok: true; trade: WechatTrade } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, error: "parameters are not JSON" };
  }
  const parsed = jsapiParamsSchema.safeParse(json);
  if (!parsed.success) return { ok: false, error: "appId, timeStamp, nonceStr, package, signType or paySign missing or malformed" };
  const p = parsed.data;
  if (p.appId !== sandbox.appId) return { ok: false, error: `appId ${p.appId} is not the merchant's` };
  if (p.signType !== "RSA") return { ok: false, error: "signType must be RSA" };
  if (!verifyRsaSha256(sandbox.merchantCertificate, `${p.appId}\n${p.timeStamp}\n${p.nonceStr}\n${p.package}\n`, p.paySign)) {
    return { ok: false, error: "paySign does not verify with the merchant certificate" };
  }
  const { trade, expired } = book.findByPrepayId(p.package.slice("prepay_id=".length));
  if (!trade || trade.tradeType !== "JSAPI" || trade.appId !== p.appId) return { ok: false, error: "no such prepay_id for this appId" };
  if (expired) return { ok: false, error: "prepay_id has expired (2 hours)" };
  if (trade.status !== "pending") return { ok: false, error: `the order is ${tradeState(trade).trade_state}` };
  return { ok: true, trade };
}

function jsBridgeShim(publicUrl: string): string {
  return `/* fiat-paymaster gateway simulator: a stand-in for WeChat's WeixinJSBridge (sandbox only) */
(function () {
  if (window.WeixinJSBridge) return;
  var sim = ${JSON.stringify(publicUrl)};
  function post(action, params) {
    return fetch(sim + "/sim/wechat/jsapi/" + action, { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify(params) })
      .then(function (r) { return r.json(); });
  }
  function sheet(check, params, cb) {
    var box = document.createElement("div");
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", "WeChat Pay");
    box.style.cssText = "position:fixed;left:0;right:0;bottom:0;background:#fff;border-top:1px solid #ccc;padding:16px;font:16px system-ui,sans-serif;z-index:99999;box-shadow:0 -4px 16px rgba(0,0,0,.2)";
    var title = document.createElement("p");
    title.textContent = "微信支付 WeChat Pay (simulator) · " + check.description;
    var amount = document.createElement("p");
    amount.style.cssText = "font-size:28px;font-weight:600;margin:8px 0";
    amount.textContent = "¥" + check.amount;
    var pay = document.createElement("button");
    pay.textContent = "Pay ¥" + check.amount;
    pay.style.cssText = "background:#07c160;color:#fff;border:0;border-radius:6px;padding:12px 20px;font-size:16px;margin-right:12px";
    var cancel = document.createElement("button");
    cancel.textContent = "Cancel";
    cancel.style.cssText = "padding:12px 20px;font-size:16px";
    box.append(title, amount, pay, cancel);
    document.body.appendChild(box);
    pay.onclick = function () {
      pay.disabled = true;
      post("pay", params).then(function (a) { box.remove(); cb({ err_msg: a.ok ? "get_brand_wcpay_request:ok" : "get_brand_wcpay_request:fail" }); },
        function () { box.remove(); cb({ err_msg: "get_brand_wcpay_request:fail" }); });
    };
    cancel.onclick = function () { box.remove(); cb({ err_msg: "get_brand_wcpay_request:cancel" }); };
  }
  window.WeixinJSBridge = {
    invoke: function (name, params, cb) {
      if (name !== "getBrandWCPayRequest") return cb({ err_msg: name + ":fail" });
      post("check", params).then(function (check) {
        if (!check.ok) { console.warn("WeixinJSBridge (simulator): " + check.error); return cb({ err_msg: "get_brand_wcpay_request:fail", err_desc: check.error }); }
        sheet(check, params, cb);
      }, function () { cb({ err_msg: "get_brand_wcpay_request:fail" }); });
    },
  };
  document.dispatchEvent(new Event("WeixinJSBridgeReady"));
})();
`;
}
