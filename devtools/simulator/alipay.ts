/**
 * A local Alipay OpenAPI v2 gateway (`gateway.do`) for sandbox mode and tests. The real `alipay-sdk` talks to it
 * unchanged except for its `gateway` option. Like the real gateway it checks app_id and the merchant's RSA2
 * request signature, keeps its own order book, signs every `<method>_response` with its own key, and posts
 * signed `trade_status_sync` notifications until the merchant answers exactly `success`.
 *
 * Behaviours of the real gateway it keeps on purpose, because merchant code must cope with them:
 * - A precreated trade exists at Alipay only once the payer has scanned the QR code (opened the payer page):
 *   before that, query and close answer ACQ.TRADE_NOT_EXIST. Closing it still locks the QR code.
 * - A trade closes itself at its expiry (time_expire, else timeout_express, else 2 hours); a fully refunded
 *   trade becomes TRADE_CLOSED.
 * - Refunds are notified on the payment's notify_url too (with out_biz_no, refund_fee and gmt_refund).
 * - A response to a request with a wrong app_id is not signed (Alipay does not know whose key to use).
 */
import { createSign, createVerify, generateKeyPairSync, randomBytes, randomInt } from "node:crypto";
import express, { type Request, type Response, Router } from "express";
import { formatBeijingTime, formatYuan, parseBeijingTime, parseYuan } from "../../server/payments/gateways/alipay";
import { ALIPAY_RETRY_SCHEDULE_MS, type Notification, NotificationDispatcher, type NotificationFaults } from "./notifier";
import type { BillFault, ProviderSimulator, SimulatedTrade, SimulatorClock } from "./types";

export const ALIPAY_GATEWAY_PATH = "/alipay/gateway.do";
export const ALIPAY_PAYER_PATH = "/payer/alipay";

/** Both sides' keys, as PEM: PKCS#1 private keys (alipay-sdk's default keyType) and SPKI public keys. */
export type AlipaySandbox = {
  appId: string;
  merchantPrivateKey: string;
  merchantPublicKey: string;
  alipayPrivateKey: string;
  alipayPublicKey: string;
};

export type AlipaySimulatorOptions = {
  /** Business time (see SimulatorClock); default the real clock. */
  clock?: SimulatorClock;
  sandbox: AlipaySandbox;
  /** Where payers and merchants reach the simulator; QR payloads point at `${publicUrl}/payer/alipay/<id>`. */
  publicUrl: string;
  /** Multiplies Alipay's notification retry delays: 1 = real time (25 hours), 0.0001 = about 9 seconds. */
  timeScale?: number;
  faults?: NotificationFaults;
  /** The gateway's clock, for trade expiry; tests move it instead of waiting. */
  now?: () => Date;
};

export function generateAlipaySandbox(): AlipaySandbox {
  const merchant = generateRsaKeyPair();
  const alipay = generateRsaKeyPair();
  return {
    appId: `2021${randomDigits(12)}`,
    merchantPrivateKey: merchant.privateKey,
    merchantPublicKey: merchant.publicKey,
    alipayPrivateKey: alipay.privateKey,
    alipayPublicKey: alipay.publicKey,
  };
}

/**
 * The fields of a trade_status_sync notification for a paid trade, unsigned (`signNotification` signs them).
 * Exported for tests and benchmarks that prepare notifications the way the gateway sends them.
 */
export function alipayPaymentFields(trade: {
  appId: string;
  sellerId: string;
  orderId: string;
  tradeNo: string;
  subject: string;
  amountFen: bigint;
  createdAt: Date;
  paidAt: Date;
}): Record<string, string> {
  const total = formatYuan(trade.amountFen);
  return {
    notify_type: "trade_status_sync",
    notify_id: randomBytes(17).toString("hex"),
    app_id: trade.appId,
    auth_app_id: trade.appId,
    charset: "utf-8",
    version: "1.0",
    out_trade_no: trade.orderId,
    trade_no: trade.tradeNo,
    subject: trade.subject,
    trade_status: "TRADE_SUCCESS",
    total_amount: total,
    receipt_amount: total,
    buyer_pay_amount: total,
    invoice_amount: total,
    point_amount: "0.00",
    fund_bill_list: JSON.stringify([{ amount: total, fundChannel: "ALIPAYACCOUNT" }]),
    gmt_create: formatBeijingTime(trade.createdAt),
    gmt_payment: formatBeijingTime(trade.paidAt),
    buyer_id: SIMULATED_BUYER.id,
    buyer_logon_id: SIMULATED_BUYER.logonId,
    seller_id: trade.sellerId,
  };
}

export function createAlipaySimulator(options: AlipaySimulatorOptions): ProviderSimulator {
  return new AlipaySimulator(options);
}

/** How long a trade stays payable when the merchant sets no expiry (Alipay's QR codes last 2 hours). */
const DEFAULT_TRADE_TIMEOUT_MS = 2 * 60 * 60 * 1000;
const MAX_TRADE_TIMEOUT_MS = 15 * 24 * 60 * 60 * 1000;
const MAX_TOTAL_FEN = 100_000_000_00n;
const NOTIFY_REQUEST_TIMEOUT_MS = 5_000;
const OUT_TRADE_NO_PATTERN = /^[0-9A-Za-z_-]{1,64}$/;
const REQUEST_TIMESTAMP_PATTERN = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
const SIMULATED_BUYER = { id: "2088102177846880", logonId: "sim***@alipay-sandbox.example" };

/** The sub_msg the real gateway sends with each business error. */
const BUSINESS_ERRORS = {
  "ACQ.INVALID_PARAMETER": "参数无效",
  "ACQ.TRADE_NOT_EXIST": "交易不存在",
  "ACQ.TRADE_HAS_SUCCESS": "交易已被支付",
  "ACQ.TRADE_HAS_CLOSE": "交易已经关闭",
  "ACQ.TRADE_STATUS_ERROR": "交易状态不合法",
  "ACQ.CONTEXT_INCONSISTENT": "交易信息被篡改",
  "ACQ.TOTAL_FEE_EXCEED": "订单总金额超过限额",
  "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "退款金额超限",
} as const;
type BusinessErrorCode = keyof typeof BUSINESS_ERRORS;

type Params = Record<string, string>;
type BizContent = Record<string, unknown>;
/** The body of one `<method>_response`: code, msg, optional sub_code/sub_msg and the method's own fields. */
type GatewayReply = Record<string, string>;
/** A reply and whether the gateway could sign it. */
type Answer = { reply: GatewayReply; signed: boolean };

type AlipayRefund = { outRequestNo: string; amountFen: bigint; refundedAt: Date };
type AlipayTrade = SimulatedTrade & {
  subject: string;
  returnUrl?: string;
  /** alipay.trade.page.pay.return / alipay.trade.wap.pay.return: the method the sync return names. */
  returnMethod?: string;
  /** 手机网站支付: the phone cashier, quit_url on leaving it. */
  wap?: boolean;
  quitUrl?: string;
  /** Whether the payer has opened the trade (scanned the QR, landed on the cashier): only then does Alipay know it. */
  scanned: boolean;
  refunds: Map<string, AlipayRefund>;
};
type NewTrade = { orderId: string; amountFen: bigint; subject: string; expiresAt: Date };

class AlipaySimulator implements ProviderSimulator {
  readonly provider = "alipay" as const;
  readonly router: Router;
  readonly notifier: NotificationDispatcher;
  private readonly trades = new Map<string, AlipayTrade>();
  private readonly sandbox: AlipaySandbox;
  private readonly publicUrl: string;
  private readonly now: () => Date;
  private readonly sellerId = `2088${randomDigits(12)}`;
  private readonly apiMethods: Record<string, (biz: BizContent, params: Params) => GatewayReply> = {
    "alipay.trade.precreate": (biz, params) => this.precreate(biz, params),
    "alipay.trade.query": (biz) => this.query(biz),
    "alipay.trade.close": (biz) => this.close(biz),
    "alipay.trade.refund": (biz) => this.refund(biz),
    "alipay.trade.fastpay.refund.query": (biz) => this.refundQuery(biz),
  };

  constructor(options: AlipaySimulatorOptions) {
    this.sandbox = options.sandbox;
    this.publicUrl = options.publicUrl.replace(/\/+$/, "");
    this.now = options.now ?? (() => new Date());
    this.notifier = new NotificationDispatcher({
      scheduleMs: ALIPAY_RETRY_SCHEDULE_MS,
      ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
      ...(options.faults ? { faults: options.faults } : {}),
    });
    this.router = this.buildRouter();
  }

  async pay(orderId: string): Promise<void> {
    const trade = this.openedByPayer(orderId);
    if (trade.status !== "pending") throw new Error(`Alipay trade ${orderId} cannot be paid: it is ${trade.status}`);
    trade.status = "paid";
    trade.paidAt = this.now();
    this.notify(`payment:${orderId}`, trade, this.paymentFields(trade));
  }

  async cancel(orderId: string): Promise<void> {
    const trade = this.openedByPayer(orderId);
    if (trade.status === "paid") throw new Error(`Alipay trade ${orderId} cannot be cancelled: it is paid`);
    trade.status = "closed";
  }

  injectBillFault(_fault: BillFault): Promise<void> {
    return Promise.reject(new Error("Alipay simulator bills: not built yet (issue 13 in progress)"));
  }

  trade(orderId: string): SimulatedTrade | undefined {
    const trade = this.trades.get(orderId);
    if (!trade) return undefined;
    this.expireIfDue(trade);
    const { orderId: id, amountFen, status, gatewayTradeNo, notifyUrl, createdAt, expiresAt, paidAt, refundedFen } = trade;
    return { orderId: id, amountFen, status, gatewayTradeNo, notifyUrl, createdAt, expiresAt, paidAt, refundedFen };
  }

  // ---- HTTP --------------------------------------------------------------------------------------------

  private buildRouter(): Router {
    const router = Router();
    const form = express.urlencoded({ extended: false });
    router.all(ALIPAY_GATEWAY_PATH, form, (req, res) => this.handleGatewayRequest(req, res));
    router.get(`${ALIPAY_PAYER_PATH}/:orderId`, (req, res) => this.showPayerPage(req, res));
    router.post(`${ALIPAY_PAYER_PATH}/:orderId`, form, (req, res) => this.handlePayerAction(req, res));
    return router;
  }

  private handleGatewayRequest(req: Request, res: Response): void {
    const params = requestParams(req);
    if (!params) return this.respond(res, undefined, { reply: invalidArguments("isv.invalid-parameter", "参数重复"), signed: false });
    const method = params.method;
    if (!method) return this.respond(res, undefined, { reply: missingArguments("isv.missing-method", "缺少方法名参数"), signed: false });
    if (method === "alipay.trade.page.pay" || method === "alipay.trade.wap.pay") return this.startPagePay(method, params, res);
    const handle = this.apiMethods[method];
    if (!handle) return this.respond(res, undefined, { reply: invalidArguments("isv.invalid-method", "不存在的方法名"), signed: false });
    const refused = this.authenticate(params);
    if (refused) return this.respond(res, method, refused);
    const biz = parseBizContent(params.biz_content);
    const reply = biz ? handle(biz, params) : businessError("ACQ.INVALID_PARAMETER");
    this.respond(res, method, { reply, signed: true });
  }

  /**
   * `{"<method>_response":{...},"sign":"..."}`: the signature covers the exact JSON text of the response object,
   * and `sign` comes last because the SDK cuts the signed text out of the raw body by position.
   */
  private respond(res: Response, method: string | undefined, { reply, signed }: Answer): void {
    const key = method ? `${method.replaceAll(".", "_")}_response` : "error_response";
    const json = JSON.stringify(reply);
    const sign = signed ? `,"sign":${JSON.stringify(signRsa2(json, this.sandbox.alipayPrivateKey))}` : "";
    res.status(200).type("application/json; charset=utf-8").send(`{"${key}":${json}${sign}}`);
  }

  /** The checks the gateway makes before any business logic; undefined when the request is genuine. */
  private authenticate(params: Params): Answer | undefined {
    if (params.app_id !== this.sandbox.appId) return { reply: invalidArguments("isv.invalid-app-id", "无效的AppID参数"), signed: false };
    if (!params.sign) return { reply: missingArguments("isv.missing-signature", "缺少签名参数"), signed: true };
    if (params.sign_type !== "RSA2") return { reply: invalidArguments("isv.invalid-signature-type", "无效的签名类型"), signed: true };
    if (!REQUEST_TIMESTAMP_PATTERN.test(params.timestamp ?? "")) {
      return { reply: invalidArguments("isv.invalid-timestamp", "非法的时间戳参数"), signed: true };
    }
    // Requests sign every parameter but `sign` itself (sign_type included), unlike notifications.
    const content = signingContent(params, ["sign"]);
    if (!verifyRsa2(content, params.sign, this.sandbox.merchantPublicKey)) {
      const hint = `验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：${content}`;
      return { reply: invalidArguments("isv.invalid-signature", hint), signed: true };
    }
    return undefined;
  }

  /**
   * The browser arrives with the SDK's signed page-pay or WAP-pay URL (or form); the cashier is our payer page
   * (in phone layout for WAP). Each product has its product_code: FAST_INSTANT_TRADE_PAY, QUICK_WAP_WAY.
   */
  private startPagePay(method: "alipay.trade.page.pay" | "alipay.trade.wap.pay", params: Params, res: Response): void {
    const refused = this.authenticate(params);
    if (refused) return sendGatewayErrorPage(res, refused.reply);
    const biz = parseBizContent(params.biz_content);
    const wap = method === "alipay.trade.wap.pay";
    if (!biz || biz.product_code !== (wap ? "QUICK_WAP_WAY" : "FAST_INSTANT_TRADE_PAY")) return sendGatewayErrorPage(res, businessError("ACQ.INVALID_PARAMETER"));
    const quitUrl = readString(biz.quit_url);
    if (quitUrl !== undefined && !/^https?:\/\//.test(quitUrl)) return sendGatewayErrorPage(res, businessError("ACQ.INVALID_PARAMETER"));
    const opened = this.openTrade(biz, params);
    if ("reply" in opened) return sendGatewayErrorPage(res, opened.reply);
    if (params.return_url) opened.trade.returnUrl = params.return_url;
    opened.trade.returnMethod = `${method}.return`;
    if (wap) {
      opened.trade.wap = true;
      if (quitUrl) opened.trade.quitUrl = quitUrl;
    }
    res.redirect(303, this.payerUrl(opened.trade.orderId));
  }

  private showPayerPage(req: Request, res: Response): void {
    const orderId = String(req.params.orderId);
    if (!this.trades.has(orderId)) return sendHtml(res, 404, renderMissingTradePage());
    sendHtml(res, 200, this.renderPayerPage(this.openedByPayer(orderId)));
  }

  private async handlePayerAction(req: Request, res: Response): Promise<void> {
    const orderId = String(req.params.orderId);
    if (!this.trades.has(orderId)) return sendHtml(res, 404, renderMissingTradePage());
    const action: unknown = isRecord(req.body) ? req.body.action : undefined;
    const trade = this.openedByPayer(orderId);
    // WAP: leaving the cashier goes to quit_url and leaves the trade open (the payer may come back and pay)
    if (action === "quit" && trade.wap) return res.redirect(303, trade.quitUrl ?? trade.returnUrl ?? this.payerUrl(orderId));
    try {
      if (action === "pay") await this.pay(orderId);
      else if (action === "cancel") await this.cancel(orderId);
      else return sendHtml(res, 400, this.renderPayerPage(this.openedByPayer(orderId), "Unknown action"));
      // WAP: once paid, Alipay sends the browser on to return_url by itself, with the signed sync return fields
      if (action === "pay" && trade.wap && trade.returnUrl) return res.redirect(303, this.signedReturnUrl(trade, trade.returnUrl));
      sendHtml(res, 200, this.renderPayerPage(this.openedByPayer(orderId)));
    } catch (error) {
      sendHtml(res, 409, this.renderPayerPage(this.openedByPayer(orderId), (error as Error).message));
    }
  }

  // ---- API methods -------------------------------------------------------------------------------------

  private precreate(biz: BizContent, params: Params): GatewayReply {
    const opened = this.openTrade(biz, params);
    if ("reply" in opened) return opened.reply;
    return success({ out_trade_no: opened.trade.orderId, qr_code: this.payerUrl(opened.trade.orderId) });
  }

  private query(biz: BizContent): GatewayReply {
    const trade = this.knownTrade(biz);
    if (!trade) return businessError("ACQ.TRADE_NOT_EXIST");
    return success({
      trade_no: trade.gatewayTradeNo,
      out_trade_no: trade.orderId,
      buyer_logon_id: SIMULATED_BUYER.logonId,
      trade_status: tradeStatusOf(trade),
      total_amount: formatYuan(trade.amountFen),
      buyer_pay_amount: formatYuan(trade.paidAt ? trade.amountFen : 0n),
      receipt_amount: formatYuan(trade.paidAt ? trade.amountFen : 0n),
      ...(trade.paidAt ? { send_pay_date: formatBeijingTime(trade.paidAt) } : {}),
    });
  }

  private close(biz: BizContent): GatewayReply {
    const trade = this.lookup(biz);
    if (!trade) return businessError("ACQ.TRADE_NOT_EXIST");
    this.expireIfDue(trade);
    if (!trade.scanned) {
      // Unknown to Alipay yet, so "not exist"; but the QR code is locked and can no longer be paid.
      if (trade.status === "pending") trade.status = "closed";
      return businessError("ACQ.TRADE_NOT_EXIST");
    }
    if (trade.status !== "pending") return businessError("ACQ.TRADE_STATUS_ERROR");
    trade.status = "closed";
    return success({ trade_no: trade.gatewayTradeNo, out_trade_no: trade.orderId });
  }

  private refund(biz: BizContent): GatewayReply {
    const trade = this.knownTrade(biz);
    if (!trade) return businessError("ACQ.TRADE_NOT_EXIST");
    const amountFen = readYuan(biz.refund_amount);
    if (amountFen === undefined || amountFen <= 0n) return businessError("ACQ.INVALID_PARAMETER");
    // Without out_request_no Alipay takes out_trade_no: one (full) refund per trade.
    const outRequestNo = readString(biz.out_request_no) ?? trade.orderId;
    const earlier = trade.refunds.get(outRequestNo);
    if (earlier) {
      return earlier.amountFen === amountFen ? this.refundReply(trade, earlier, "N") : businessError("ACQ.CONTEXT_INCONSISTENT");
    }
    if (!trade.paidAt) return businessError(trade.status === "closed" ? "ACQ.TRADE_HAS_CLOSE" : "ACQ.TRADE_STATUS_ERROR");
    if (trade.refundedFen + amountFen > trade.amountFen) return businessError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    const refund = { outRequestNo, amountFen, refundedAt: this.now() };
    trade.refunds.set(outRequestNo, refund);
    trade.refundedFen += amountFen;
    if (trade.refundedFen === trade.amountFen) trade.status = "closed";
    this.notify(`refund:${trade.orderId}:${outRequestNo}`, trade, this.refundFields(trade, refund));
    return this.refundReply(trade, refund, "Y");
  }

  private refundReply(trade: AlipayTrade, refund: AlipayRefund, fundChange: "Y" | "N"): GatewayReply {
    return success({
      trade_no: trade.gatewayTradeNo,
      out_trade_no: trade.orderId,
      buyer_logon_id: SIMULATED_BUYER.logonId,
      fund_change: fundChange,
      refund_fee: formatYuan(trade.refundedFen),
      gmt_refund_pay: formatBeijingTime(refund.refundedAt),
    });
  }

  private refundQuery(biz: BizContent): GatewayReply {
    const trade = this.knownTrade(biz);
    if (!trade) return businessError("ACQ.TRADE_NOT_EXIST");
    const outRequestNo = readString(biz.out_request_no) ?? trade.orderId;
    const refund = trade.refunds.get(outRequestNo);
    const ids = { trade_no: trade.gatewayTradeNo, out_trade_no: trade.orderId, out_request_no: outRequestNo };
    // An unknown refund is not an error: the answer simply carries no refund data.
    if (!refund) return success(ids);
    return success({
      ...ids,
      total_amount: formatYuan(trade.amountFen),
      refund_amount: formatYuan(refund.amountFen),
      refund_status: "REFUND_SUCCESS",
      gmt_refund_pay: formatBeijingTime(refund.refundedAt),
    });
  }

  // ---- Order book --------------------------------------------------------------------------------------

  /** Precreate and page pay: a new trade, or the same one again for an identical repeat. */
  private openTrade(biz: BizContent, params: Params): { trade: AlipayTrade } | { reply: GatewayReply } {
    const request = readNewTrade(biz, this.now());
    if ("reply" in request) return request;
    const existing = this.trades.get(request.orderId);
    if (existing) return this.reopen(existing, request);
    const trade: AlipayTrade = {
      ...request,
      status: "pending",
      gatewayTradeNo: this.newTradeNo(),
      notifyUrl: params.notify_url ?? "",
      createdAt: this.now(),
      refundedFen: 0n,
      scanned: false,
      refunds: new Map(),
    };
    this.trades.set(trade.orderId, trade);
    return { trade };
  }

  private reopen(trade: AlipayTrade, request: NewTrade): { trade: AlipayTrade } | { reply: GatewayReply } {
    this.expireIfDue(trade);
    if (trade.paidAt) return { reply: businessError("ACQ.TRADE_HAS_SUCCESS") };
    if (trade.status === "closed") return { reply: businessError("ACQ.TRADE_HAS_CLOSE") };
    if (trade.amountFen !== request.amountFen || trade.subject !== request.subject) {
      return { reply: businessError("ACQ.CONTEXT_INCONSISTENT") };
    }
    return { trade };
  }

  /** A trade as the merchant's query/close/refund see it: only once the payer has opened it. */
  private knownTrade(biz: BizContent): AlipayTrade | undefined {
    const trade = this.lookup(biz);
    if (!trade?.scanned) return undefined;
    this.expireIfDue(trade);
    return trade;
  }

  private lookup(biz: BizContent): AlipayTrade | undefined {
    const orderId = readString(biz.out_trade_no);
    if (orderId !== undefined) return this.trades.get(orderId);
    const tradeNo = readString(biz.trade_no);
    return [...this.trades.values()].find((trade) => trade.gatewayTradeNo === tradeNo);
  }

  /** The payer scanned the QR code or landed on the cashier: from now on Alipay knows the trade. */
  private openedByPayer(orderId: string): AlipayTrade {
    const trade = this.trades.get(orderId);
    if (!trade) throw new Error(`no Alipay trade ${orderId}`);
    trade.scanned = true;
    this.expireIfDue(trade);
    return trade;
  }

  private expireIfDue(trade: AlipayTrade): void {
    if (trade.status === "pending" && trade.expiresAt && this.now() >= trade.expiresAt) trade.status = "closed";
  }

  private newTradeNo(): string {
    return `${formatBeijingTime(this.now()).slice(0, 10).replaceAll("-", "")}22001${randomDigits(15)}`;
  }

  private payerUrl(orderId: string): string {
    return `${this.publicUrl}${ALIPAY_PAYER_PATH}/${encodeURIComponent(orderId)}`;
  }

  // ---- Notifications -----------------------------------------------------------------------------------

  private notify(key: string, trade: AlipayTrade, fields: Params): void {
    if (!trade.notifyUrl) return;
    this.notifier.dispatch(this.notification(key, trade.notifyUrl, fields));
  }

  /** Attempts are stamped and signed afresh; the tampered copy changes the amount after signing. */
  private notification(key: string, url: string, fields: Params): Notification {
    let latest: { at: number; signed: Params } | undefined;
    return {
      key,
      send: async ({ tampered }) => {
        // signed afresh with a new notify_time once a minute old; the copies of one attempt share it
        if (!latest || Date.now() - latest.at > 60_000) {
          latest = { at: Date.now(), signed: signNotification({ ...fields, notify_time: formatBeijingTime(this.now()) }, this.sandbox.alipayPrivateKey) };
        }
        const signed = latest.signed;
        return postNotification(url, tampered ? { ...signed, total_amount: inflatedAmount(signed.total_amount!) } : signed);
      },
    };
  }

  private paymentFields(trade: AlipayTrade): Params {
    return alipayPaymentFields({
      appId: this.sandbox.appId,
      sellerId: this.sellerId,
      orderId: trade.orderId,
      tradeNo: trade.gatewayTradeNo,
      subject: trade.subject,
      amountFen: trade.amountFen,
      createdAt: trade.createdAt,
      paidAt: trade.paidAt ?? this.now(),
    });
  }

  private refundFields(trade: AlipayTrade, refund: AlipayRefund): Params {
    return {
      ...this.paymentFields(trade),
      trade_status: tradeStatusOf(trade),
      out_biz_no: refund.outRequestNo,
      refund_fee: formatYuan(trade.refundedFen),
      gmt_refund: formatBeijingTime(refund.refundedAt),
    };
  }

  /** Page pay's synchronous return: the browser goes back to return_url with signed trade fields. */
  private signedReturnUrl(trade: AlipayTrade, returnUrl: string): string {
    const fields = signNotification(
      {
        method: trade.returnMethod ?? "alipay.trade.page.pay.return",
        app_id: this.sandbox.appId,
        auth_app_id: this.sandbox.appId,
        charset: "utf-8",
        version: "1.0",
        out_trade_no: trade.orderId,
        trade_no: trade.gatewayTradeNo,
        total_amount: formatYuan(trade.amountFen),
        seller_id: this.sellerId,
        timestamp: formatBeijingTime(this.now()),
      },
      this.sandbox.alipayPrivateKey,
    );
    const url = new URL(returnUrl);
    for (const [name, value] of Object.entries(fields)) url.searchParams.set(name, value);
    return url.toString();
  }

  // ---- Payer page --------------------------------------------------------------------------------------

  private renderPayerPage(trade: AlipayTrade, message?: string): string {
    const amount = `¥${formatYuan(trade.amountFen)}`;
    // the WAP cashier's way out is quit_url (the trade stays open); the desktop one's Cancel closes the trade
    const leave = trade.wap ? `<button name="action" value="quit">Cancel</button>` : `<button name="action" value="cancel">Cancel</button>`;
    const actions = trade.status === "pending" ? `<form method="post"><button name="action" value="pay">Pay ${amount}</button> ${leave}</form>` : "";
    const back = trade.status === "paid" && trade.returnUrl ? `<p><a id="return" href="${escapeHtml(this.signedReturnUrl(trade, trade.returnUrl))}">Back to merchant</a></p>` : "";
    return page(
      `Alipay · ${trade.subject}`,
      `<h1>支付宝 Alipay (simulator)${trade.wap ? " · 手机网站支付" : ""}</h1>
<p id="subject">${escapeHtml(trade.subject)}</p>
<p id="amount">${amount}</p>
<p>Order <code>${escapeHtml(trade.orderId)}</code> · Trade <code>${trade.gatewayTradeNo}</code></p>
<p id="status">${PAYER_STATUS_TEXT[trade.status]}</p>
${message ? `<p id="message">${escapeHtml(message)}</p>` : ""}${actions}${back}`,
    );
  }
}

const PAYER_STATUS_TEXT: Record<SimulatedTrade["status"], string> = {
  pending: "Waiting for payment (等待付款)",
  paid: "Paid (支付成功)",
  closed: "Closed (交易关闭)",
};

// ---- Protocol helpers ----------------------------------------------------------------------------------

/** Query string and form body together, as the gateway reads them; undefined if a parameter repeats. */
function requestParams(req: Request): Params | undefined {
  const query = [...new URL(req.originalUrl, "http://simulator").searchParams];
  const body = isRecord(req.body) ? Object.entries(req.body) : [];
  const seen = new Set<string>();
  for (const [name, value] of [...query, ...body]) {
    // Which copy would have been signed?
    if (typeof value !== "string" || seen.has(name)) return undefined;
    seen.add(name);
  }
  return Object.fromEntries([...query, ...body]) as Params;
}

function parseBizContent(text: string | undefined): BizContent | undefined {
  if (text === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return isRecord(parsed) && !Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function readNewTrade(biz: BizContent, now: Date): NewTrade | { reply: GatewayReply } {
  const orderId = readString(biz.out_trade_no);
  const amountFen = readYuan(biz.total_amount);
  const subject = readString(biz.subject);
  const expiresAt = readExpiry(biz, now);
  if (!orderId || !OUT_TRADE_NO_PATTERN.test(orderId) || amountFen === undefined || amountFen <= 0n) {
    return { reply: businessError("ACQ.INVALID_PARAMETER") };
  }
  if (!subject || subject.length > 256 || !expiresAt) return { reply: businessError("ACQ.INVALID_PARAMETER") };
  if (amountFen > MAX_TOTAL_FEN) return { reply: businessError("ACQ.TOTAL_FEE_EXCEED") };
  return { orderId, amountFen, subject, expiresAt };
}

/** time_expire (absolute, Beijing time) wins over timeout_express ("90m", "2h", "1d", "1c" = end of today). */
function readExpiry(biz: BizContent, now: Date): Date | undefined {
  const timeExpire = readString(biz.time_expire);
  if (timeExpire !== undefined) return parseBeijingTime(timeExpire);
  const timeout = readString(biz.timeout_express);
  if (timeout === undefined) return new Date(now.getTime() + DEFAULT_TRADE_TIMEOUT_MS);
  if (timeout === "1c") return endOfBeijingDay(now);
  const match = /^([1-9]\d*)([mhd])$/.exec(timeout);
  if (!match) return undefined;
  const unitMs = { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "m" | "h" | "d"];
  const durationMs = Number(match[1]) * unitMs;
  return durationMs <= MAX_TRADE_TIMEOUT_MS ? new Date(now.getTime() + durationMs) : undefined;
}

function endOfBeijingDay(now: Date): Date {
  const today = parseBeijingTime(`${formatBeijingTime(now).slice(0, 10)} 00:00:00`)!;
  return new Date(today.getTime() + 86_400_000);
}

function readString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** Merchants may send amounts as JSON strings ("10.00") or numbers (10.5); both are read as decimal text. */
function readYuan(value: unknown): bigint | undefined {
  if (typeof value === "string") return parseYuan(value);
  if (typeof value === "number" && Number.isFinite(value)) return parseYuan(String(value));
  return undefined;
}

function tradeStatusOf(trade: AlipayTrade): string {
  if (trade.status === "paid") return "TRADE_SUCCESS";
  return trade.status === "closed" ? "TRADE_CLOSED" : "WAIT_BUYER_PAY";
}

function inflatedAmount(total: string): string {
  return formatYuan((parseYuan(total) ?? 0n) + 100_00n);
}

function success(fields: GatewayReply): GatewayReply {
  return { code: "10000", msg: "Success", ...fields };
}

function businessError(subCode: BusinessErrorCode): GatewayReply {
  return { code: "40004", msg: "Business Failed", sub_code: subCode, sub_msg: BUSINESS_ERRORS[subCode] };
}

function invalidArguments(subCode: string, subMsg: string): GatewayReply {
  return { code: "40002", msg: "Invalid Arguments", sub_code: subCode, sub_msg: subMsg };
}

function missingArguments(subCode: string, subMsg: string): GatewayReply {
  return { code: "40001", msg: "Missing Required Arguments", sub_code: subCode, sub_msg: subMsg };
}

/** The real gateway shows page-pay errors to the payer as a page: "错误代码 invalid-signature 错误原因: …". */
function sendGatewayErrorPage(res: Response, reply: GatewayReply): void {
  const code = (reply.sub_code ?? reply.code ?? "").replace(/^isv\./, "");
  sendHtml(res, 400, page("Alipay error", `<h1>支付宝 Alipay (simulator)</h1><p id="error">错误代码 ${escapeHtml(code)} 错误原因: ${escapeHtml(reply.sub_msg ?? reply.msg ?? "")}</p>`));
}

function renderMissingTradePage(): string {
  return page("Alipay", `<h1>支付宝 Alipay (simulator)</h1><p id="status">No such trade (交易不存在)</p>`);
}

function sendHtml(res: Response, status: number, html: string): void {
  res.status(status).type("html").send(html);
}

function page(title: string, body: string): string {
  // a phone-sized layout: the WAP cashier is opened on phones (the desktop page reads the same)
  return `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:0 auto;padding:1rem}h1{font-size:1.2rem;color:#1677ff}#amount{font-size:2rem;font-weight:600}button{font-size:1rem;padding:.7rem 1.2rem;margin:.3rem 0;min-width:8rem}button[value=pay]{background:#1677ff;color:#fff;border:0;border-radius:6px}</style></head><body>${body}</body></html>`;
}

// ---- Signatures ----------------------------------------------------------------------------------------

/** Alipay's string to sign: non-empty parameters except the excluded ones, sorted by name, `k=v` joined by `&`. */
function signingContent(params: Params, excluded: string[]): string {
  return Object.keys(params)
    .filter((name) => !excluded.includes(name) && params[name] !== "")
    .sort()
    .map((name) => `${name}=${params[name]}`)
    .join("&");
}

/**
 * Notifications (and page-pay returns) leave both sign and sign_type out of the signed string. Exported so tests
 * can craft notifications the simulator never sends (signed by another key, for another order).
 */
export function signNotification(fields: Params, alipayPrivateKey: string): Params {
  const sign = signRsa2(signingContent(fields, ["sign", "sign_type"]), alipayPrivateKey);
  return { ...fields, sign_type: "RSA2", sign };
}

function signRsa2(content: string, privateKey: string): string {
  return createSign("RSA-SHA256").update(content, "utf8").sign(privateKey, "base64");
}

function verifyRsa2(content: string, signature: string | undefined, publicKey: string): boolean {
  if (!signature) return false;
  try {
    return createVerify("RSA-SHA256").update(content, "utf8").verify(publicKey, signature, "base64");
  } catch {
    return false;
  }
}

/** Alipay counts a notification as received only when the merchant answers exactly `success`. */
async function postNotification(url: string, form: Params): Promise<boolean> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    body: new URLSearchParams(form).toString(),
    redirect: "manual",
    signal: AbortSignal.timeout(NOTIFY_REQUEST_TIMEOUT_MS),
  });
  const body = await response.text();
  return response.status === 200 && body === "success";
}

// ---- Small utilities -----------------------------------------------------------------------------------

function generateRsaKeyPair(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
  });
}

function randomDigits(count: number): string {
  return Array.from({ length: count }, () => randomInt(10)).join("");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
