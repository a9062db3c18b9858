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
 * - Refunds are notified on the payment's notify_url too (with out_biz_no, refund_fee and gmt_refund): a partial
 *   refund as TRADE_SUCCESS, the refund that empties the trade as TRADE_CLOSED (with gmt_close).
 * - A response to a request with a wrong app_id is not signed (Alipay does not know whose key to use).
 * - The payer's Cancel on the cashier only leaves it: the trade stays WAIT_BUYER_PAY until it expires or the
 *   merchant closes it (Alipay has no "payer cancelled" state, and sends no notification).
 * - A refund the merchant's balance cannot cover is refused with ACQ.SELLER_BALANCE_NOT_ENOUGH and not recorded,
 *   so the same out_request_no can be retried once money came in (`setMerchantBalance`).
 * - The trade bill (`alipay.data.dataservice.bill.downloadurl.query`, bill_type trade) for day D exists from D+1
 *   09:00 Beijing time (by the business clock): a zip of two GBK CSV files (业务明细 and 业务明细(汇总)) in Alipay's
 *   layout, at a URL that lives 30 seconds (real time). Before the day is over the date is refused
 *   (isv.invalid-arguments); a day over but not produced yet, or without trades, is isp.bill_not_exist.
 */
import { type KeyObject, createSign, createVerify, generateKeyPairSync, randomBytes, randomInt } from "node:crypto";
import express, { type Request, type Response, Router } from "express";
import { zipSync } from "fflate";
import iconv from "iconv-lite";
import { formatBeijingTime, formatYuan, parseBeijingTime, parseYuan } from "../../server/payments/gateways/alipay";
import { ALIPAY_RETRY_SCHEDULE_MS, type Notification, NotificationDispatcher, type NotificationFaults } from "./notifier";
import type { BillFault, ProviderSimulator, SimulatedTrade, SimulatorClock } from "./types";

export const ALIPAY_GATEWAY_PATH = "/alipay/gateway.do";
export const ALIPAY_PAYER_PATH = "/payer/alipay";
/** Where the 30-second bill download URLs point (Alipay's is dwbillcenter.alipay.com/downloadBillFile.resource). */
export const ALIPAY_BILL_PATH = "/alipay/downloadBillFile.resource";

/** Both sides' keys, as PEM: PKCS#1 private keys (alipay-sdk's default keyType) and SPKI public keys. */
export type AlipaySandbox = {
  appId: string;
  /** The merchant's PID (seller_id in notifications, 2088 + 12 digits), fixed for the sandbox like its keys. */
  sellerId: string;
  merchantPrivateKey: string;
  merchantPublicKey: string;
  alipayPrivateKey: string;
  alipayPublicKey: string;
};

export type AlipaySimulatorOptions = {
  /** Business time (see SimulatorClock): trade, payment, refund times, expiry and bill days; default the real clock. */
  clock?: SimulatorClock;
  sandbox: AlipaySandbox;
  /** Where payers and merchants reach the simulator; QR payloads point at `${publicUrl}/payer/alipay/<id>`. */
  publicUrl: string;
  /** Multiplies Alipay's notification retry delays: 1 = real time (25 hours), 0.0001 = about 9 seconds. */
  timeScale?: number;
  faults?: NotificationFaults;
  /** Older name of `clock` (the gateway's clock, for trade expiry); `clock` wins when both are given. */
  now?: () => Date;
};

/** The simulated Alipay, with the controls only a simulator has. */
export interface AlipaySimulator extends ProviderSimulator {
  readonly sellerId: string;
  /**
   * The merchant's Alipay balance refunds are paid from: undefined (the default) never runs short; a figure goes
   * up with each payment and down with each refund, and a refund beyond it is ACQ.SELLER_BALANCE_NOT_ENOUGH.
   */
  setMerchantBalance(fen: bigint | undefined): void;
  merchantBalance(): bigint | undefined;
}

export function generateAlipaySandbox(): AlipaySandbox {
  const merchant = generateRsaKeyPair();
  const alipay = generateRsaKeyPair();
  return {
    appId: `2021${randomDigits(12)}`,
    sellerId: newSellerId(),
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

export function createAlipaySimulator(options: AlipaySimulatorOptions): AlipaySimulator {
  return new SimulatedAlipay(options);
}

/** A PID as Alipay gives them: 2088 and 12 digits. */
export function newSellerId(): string {
  return `2088${randomDigits(12)}`;
}

/** How long a trade stays payable when the merchant sets no expiry (Alipay's QR codes last 2 hours). */
const DEFAULT_TRADE_TIMEOUT_MS = 2 * 60 * 60 * 1000;
const MAX_TRADE_TIMEOUT_MS = 15 * 24 * 60 * 60 * 1000;
const MAX_TOTAL_FEN = 100_000_000_00n;
const NOTIFY_REQUEST_TIMEOUT_MS = 5_000;
const OUT_TRADE_NO_PATTERN = /^[0-9A-Za-z_-]{1,64}$/;
const REQUEST_TIMESTAMP_PATTERN = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
const SIMULATED_BUYER = { id: "2088102177846880", logonId: "sim***@alipay-sandbox.example" };
/** 当面付's standard rate: 0.6 % of the amount, rounded to the fen (half up); a refund gives its share back. */
const FEE_PER_MILLE = 6n;
/** When Alipay has produced the trade bill of a day: 09:00 the next day, Beijing time. */
const BILL_READY_AFTER_MS = (24 + 9) * 60 * 60 * 1000;
/** The bill download URL works for 30 seconds (real time). */
const BILL_URL_TTL_MS = 30_000;

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
  "ACQ.SELLER_BALANCE_NOT_ENOUGH": "卖家余额不足",
  "isp.bill_not_exist": "账单不存在",
  "isv.invalid-arguments": "参数不合法",
} as const;
type BusinessErrorCode = keyof typeof BUSINESS_ERRORS;

type Params = Record<string, string>;
type BizContent = Record<string, unknown>;
/** The body of one `<method>_response`: code, msg, optional sub_code/sub_msg and the method's own fields. */
type GatewayReply = Record<string, string>;
/** A reply and whether the gateway could sign it. */
type Answer = { reply: GatewayReply; signed: boolean };

/** `console`: made in the merchant console (a bill fault): its batch number is Alipay's, and nobody is notified. */
type AlipayRefund = { outRequestNo: string; amountFen: bigint; refundedAt: Date; console?: boolean };
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
  /** Bill faults: paid without a word (queries see `apparent`), and listed in the bill a fen above the payment. */
  silent?: { apparent: "pending" | "closed" };
  billExtraFen?: bigint;
};
type NewTrade = { orderId: string; amountFen: bigint; subject: string; expiresAt: Date };

class SimulatedAlipay implements AlipaySimulator {
  readonly provider = "alipay" as const;
  readonly router: Router;
  readonly notifier: NotificationDispatcher;
  readonly sellerId: string;
  private readonly trades = new Map<string, AlipayTrade>();
  private readonly sandbox: AlipaySandbox;
  private readonly publicUrl: string;
  /** Business time. */
  private readonly now: () => Date;
  private balanceFen: bigint | undefined;
  /** Bill zips handed out, by fileId, until their URL expires (real time). */
  private readonly billDownloads = new Map<string, { zip: Uint8Array; expiresAt: number }>();
  private readonly apiMethods: Record<string, (biz: BizContent, params: Params) => GatewayReply> = {
    "alipay.trade.precreate": (biz, params) => this.precreate(biz, params),
    "alipay.trade.query": (biz) => this.query(biz),
    "alipay.trade.close": (biz) => this.close(biz),
    "alipay.trade.refund": (biz) => this.refund(biz),
    "alipay.trade.fastpay.refund.query": (biz) => this.refundQuery(biz),
    "alipay.data.dataservice.bill.downloadurl.query": (biz) => this.billDownloadUrl(biz),
  };

  constructor(options: AlipaySimulatorOptions) {
    this.sandbox = options.sandbox;
    this.sellerId = options.sandbox.sellerId;
    this.publicUrl = options.publicUrl.replace(/\/+$/, "");
    this.now = options.clock ?? options.now ?? (() => new Date());
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
    this.markPaid(trade);
    this.notify(`payment:${orderId}`, trade, this.paymentFields(trade));
  }

  /**
   * The payer leaves the cashier (Cancel): Alipay keeps the trade WAIT_BUYER_PAY, payable again, until it expires
   * or the merchant closes it; nobody is notified.
   */
  async cancel(orderId: string): Promise<void> {
    const trade = this.openedByPayer(orderId);
    if (trade.status !== "pending") throw new Error(`Alipay trade ${orderId} cannot be cancelled: it is ${trade.status}`);
  }

  async injectBillFault(fault: BillFault): Promise<void> {
    const trade = this.trades.get(fault.orderId);
    if (!trade) throw new Error(`no Alipay trade ${fault.orderId}`);
    this.expireIfDue(trade);
    switch (fault.kind) {
      case "silent_payment": {
        if (trade.status !== "pending") throw new Error(`Alipay trade ${fault.orderId} cannot be paid silently: it is ${trade.status}`);
        trade.scanned = true;
        trade.silent = { apparent: "pending" };
        this.markPaid(trade);
        return;
      }
      case "amount_off_by_one_fen":
        trade.billExtraFen = 1n;
        return;
      case "console_refund": {
        if (!trade.paidAt) throw new Error(`Alipay trade ${fault.orderId} cannot be refunded: it is not paid`);
        if (fault.amountFen <= 0n || trade.refundedFen + fault.amountFen > trade.amountFen) {
          throw new Error(`Alipay trade ${fault.orderId}: a console refund of ${fault.amountFen} fen exceeds what is left (${trade.amountFen - trade.refundedFen} fen)`);
        }
        // the console numbers its refunds itself; this batch number is none of the merchant's out_request_no
        const refund = { outRequestNo: `HZ01RF${formatBeijingTime(this.now()).slice(0, 10).replaceAll("-", "")}${randomDigits(10)}`, amountFen: fault.amountFen, refundedAt: this.now(), console: true };
        this.recordRefund(trade, refund);
        return;
      }
    }
  }

  setMerchantBalance(fen: bigint | undefined): void {
    this.balanceFen = fen;
  }

  merchantBalance(): bigint | undefined {
    return this.balanceFen;
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
    router.get(ALIPAY_BILL_PATH, (req, res) => this.serveBill(req, res));
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
    const content = signingContent(params, ["sign"], { dropEmpty: true });
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
      else if (action === "cancel") {
        await this.cancel(orderId);
        return sendHtml(res, 200, this.renderPayerPage(trade, "Not paid: the order stays open until it expires or the merchant closes it (未付款)"));
      } else return sendHtml(res, 400, this.renderPayerPage(this.openedByPayer(orderId), "Unknown action"));
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
    // a silent payment (bill fault) is invisible here: the trade reads as if nobody had paid
    const paidAt = trade.silent ? undefined : trade.paidAt;
    return success({
      trade_no: trade.gatewayTradeNo,
      out_trade_no: trade.orderId,
      buyer_logon_id: SIMULATED_BUYER.logonId,
      trade_status: tradeStatusOf(trade),
      total_amount: formatYuan(trade.amountFen),
      buyer_pay_amount: formatYuan(paidAt ? trade.amountFen : 0n),
      receipt_amount: formatYuan(paidAt ? trade.amountFen : 0n),
      ...(paidAt ? { send_pay_date: formatBeijingTime(paidAt) } : {}),
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
    if (trade.silent) {
      if (trade.silent.apparent !== "pending") return businessError("ACQ.TRADE_STATUS_ERROR");
      trade.silent.apparent = "closed";
      return success({ trade_no: trade.gatewayTradeNo, out_trade_no: trade.orderId });
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
    if (!trade.paidAt || trade.silent) return businessError(tradeStatusOf(trade) === "TRADE_CLOSED" ? "ACQ.TRADE_HAS_CLOSE" : "ACQ.TRADE_STATUS_ERROR");
    if (trade.refundedFen + amountFen > trade.amountFen) return businessError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    // refused, not recorded: the same out_request_no goes through once the balance covers it
    if (this.balanceFen !== undefined && amountFen > this.balanceFen) return businessError("ACQ.SELLER_BALANCE_NOT_ENOUGH");
    const refund = { outRequestNo, amountFen, refundedAt: this.now() };
    this.recordRefund(trade, refund);
    this.notify(`refund:${trade.orderId}:${outRequestNo}`, trade, this.refundFields(trade, refund));
    return this.refundReply(trade, refund, "Y");
  }

  private markPaid(trade: AlipayTrade): void {
    trade.status = "paid";
    trade.paidAt = this.now();
    if (this.balanceFen !== undefined) this.balanceFen += trade.amountFen;
  }

  private recordRefund(trade: AlipayTrade, refund: AlipayRefund): void {
    trade.refunds.set(refund.outRequestNo, refund);
    trade.refundedFen += refund.amountFen;
    if (this.balanceFen !== undefined) this.balanceFen -= refund.amountFen;
    if (trade.refundedFen === trade.amountFen) trade.status = "closed";
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

  // ---- Bills -------------------------------------------------------------------------------------------

  /** The trade bill of a day (bill_type trade, bill_date YYYY-MM-DD): a download URL, or why there is none. */
  private billDownloadUrl(biz: BizContent): GatewayReply {
    const billType = readString(biz.bill_type);
    const billDate = readString(biz.bill_date);
    const dayStart = billDate && /^\d{4}-\d{2}-\d{2}$/.test(billDate) ? parseBeijingTime(`${billDate} 00:00:00`) : undefined;
    if (billType !== "trade" || !dayStart) return businessError("isv.invalid-arguments");
    const now = this.now().getTime();
    // today's (or a future day's) bill cannot be asked for; a day over has its bill from 09:00 the next day
    if (now < dayStart.getTime() + 86_400_000) return businessError("isv.invalid-arguments");
    if (now < dayStart.getTime() + BILL_READY_AFTER_MS) return businessError("isp.bill_not_exist");
    const lines = this.billLines(dayStart);
    if (lines.length === 0) return businessError("isp.bill_not_exist");
    const fileId = randomBytes(16).toString("hex");
    const day = billDate!.replaceAll("-", "");
    const zip = alipayTradeBillZip({ pid: this.sellerId, date: billDate!, lines, exportedAt: this.now() });
    this.billDownloads.set(fileId, { zip, expiresAt: Date.now() + BILL_URL_TTL_MS });
    const query = new URLSearchParams({ bizType: "trade", userId: this.sellerId, fileType: "csv.zip", bizDates: day, downloadFileName: `${this.sellerId}0156_${day}.csv.zip`, fileId });
    return success({ bill_download_url: `${this.publicUrl}${ALIPAY_BILL_PATH}?${query.toString()}` });
  }

  /** What the book shows for the day: payments by payment time, refunds by refund time (business clock). */
  private billLines(dayStart: Date): AlipayBillLine[] {
    const inDay = (at: Date | undefined) => at !== undefined && at >= dayStart && at.getTime() < dayStart.getTime() + 86_400_000;
    const lines: AlipayBillLine[] = [];
    for (const trade of this.trades.values()) {
      const common = { tradeNo: trade.gatewayTradeNo, orderId: trade.orderId, subject: trade.subject, createdAt: trade.createdAt };
      if (inDay(trade.paidAt)) {
        const amountFen = trade.amountFen + (trade.billExtraFen ?? 0n);
        lines.push({ ...common, type: "交易", finishedAt: trade.paidAt!, amountFen, feeFen: -feeFor(amountFen) });
      }
      for (const refund of trade.refunds.values()) {
        if (!inDay(refund.refundedAt)) continue;
        lines.push({ ...common, type: "退款", finishedAt: refund.refundedAt, amountFen: -refund.amountFen, feeFen: feeFor(refund.amountFen), batchNo: refund.outRequestNo });
      }
    }
    return lines.sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime());
  }

  /** The download itself: a plain GET, no signature, for 30 seconds. */
  private serveBill(req: Request, res: Response): void {
    const fileId = typeof req.query.fileId === "string" ? req.query.fileId : "";
    const download = this.billDownloads.get(fileId);
    if (!download || Date.now() >= download.expiresAt) {
      this.billDownloads.delete(fileId);
      res.status(404).type("text/plain; charset=utf-8").send("下载链接已失效 (the bill download URL has expired)");
      return;
    }
    res.status(200).type("application/zip").send(Buffer.from(download.zip));
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
    const due = trade.expiresAt !== undefined && this.now() >= trade.expiresAt;
    if (trade.status === "pending" && due) trade.status = "closed";
    if (trade.silent?.apparent === "pending" && due) trade.silent.apparent = "closed";
  }

  private newTradeNo(): string {
    return `${formatBeijingTime(this.now()).slice(0, 10).replaceAll("-", "")}22001${randomDigits(15)}`;
  }

  private payerUrl(orderId: string): string {
    return `${this.publicUrl}${ALIPAY_PAYER_PATH}/${encodeURIComponent(orderId)}`;
  }

  // ---- Notifications -----------------------------------------------------------------------------------

  private notify(key: string, trade: AlipayTrade, fields: Params): void {
    if (!trade.notifyUrl || trade.silent) return;
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

  /**
   * A refund is notified like the payment, plus out_biz_no (the out_request_no), refund_fee (all refunded so far) and
   * gmt_refund; the refund that empties the trade closes it: TRADE_CLOSED with gmt_close.
   */
  private refundFields(trade: AlipayTrade, refund: AlipayRefund): Params {
    const closed = trade.refundedFen === trade.amountFen;
    return {
      ...this.paymentFields(trade),
      trade_status: closed ? "TRADE_CLOSED" : "TRADE_SUCCESS",
      out_biz_no: refund.outRequestNo,
      refund_fee: formatYuan(trade.refundedFen),
      gmt_refund: formatBeijingTime(refund.refundedAt),
      ...(closed ? { gmt_close: formatBeijingTime(refund.refundedAt) } : {}),
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
  const status = trade.silent && trade.status === "paid" ? trade.silent.apparent : trade.status;
  if (status === "paid") return "TRADE_SUCCESS";
  return status === "closed" ? "TRADE_CLOSED" : "WAIT_BUYER_PAY";
}

function feeFor(amountFen: bigint): bigint {
  return (amountFen * FEE_PER_MILLE + 500n) / 1000n;
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

// ---- The trade bill file -------------------------------------------------------------------------------

/** One row of the 业务明细: amounts signed as Alipay writes them (a refund negative; 服务费 negative when charged). */
export type AlipayBillLine = {
  tradeNo: string;
  orderId: string;
  type: "交易" | "退款";
  subject: string;
  createdAt: Date;
  finishedAt: Date;
  amountFen: bigint;
  feeFen: bigint;
  /** 退款批次号/请求号: the refund's out_request_no (or the console's own number). */
  batchNo?: string;
};

const DETAIL_HEADER = [
  "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称", "操作员", "终端号", "对方账户",
  "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称",
  "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注",
];
const SUMMARY_HEADER = [
  "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）", "支付宝优惠（元）", "商家优惠（元）",
  "卡消费金额（元）", "服务费（元）", "分润（元）", "实收净额（元）",
];

/**
 * The zip Alipay serves for a day's trade bill: `<PID>0156_<yyyymmdd>_业务明细.csv` and `…_业务明细(汇总).csv`, GBK,
 * in Alipay's layout (comment header, padded cells, end marker, 合计 lines). Exported so tests can read it as
 * Alipay writes it. One difference from Alipay's zips: the file names are flagged UTF-8 (Alipay writes GBK names
 * without the flag), as that is what the zip library writes; the reader accepts both.
 */
export function alipayTradeBillZip(bill: { pid: string; date: string; lines: AlipayBillLine[]; exportedAt: Date }): Uint8Array {
  const account = `${bill.pid}0156`;
  const day = bill.date.replaceAll("-", "");
  const name = (kind: string) => `${account}_${day}_${kind}.csv`;
  return zipSync({
    [name("业务明细")]: iconv.encode(alipayDetailCsv(account, bill), "gbk"),
    [name("业务明细(汇总)")]: iconv.encode(alipaySummaryCsv(account, bill), "gbk"),
  });
}

function billHead(title: string, account: string, date: string, list: string): string[] {
  const start = parseBeijingTime(`${date} 00:00:00`)!;
  return [
    `#支付宝${title}查询`,
    `#账号：[${account}]`,
    `#起始日期：[${chineseTime(start)}]   终止日期：[${chineseTime(new Date(start.getTime() + 86_400_000))}]`,
    `#-----------------------------------------${list}----------------------------------------`,
  ];
}

function alipayDetailCsv(account: string, bill: { date: string; lines: AlipayBillLine[]; exportedAt: Date }): string {
  const payments = bill.lines.filter((line) => line.type === "交易");
  const refunds = bill.lines.filter((line) => line.type === "退款");
  const sum = (lines: AlipayBillLine[]) => lines.reduce((total, line) => total + line.amountFen, 0n);
  // Alipay pads identifiers with a tab so spreadsheets keep them as text
  const rows = bill.lines.map((line) => {
    const amount = formatSignedYuan(line.amountFen);
    return [
      `${line.tradeNo}\t`, `${line.orderId}\t`, `${line.type}\t`, csvCell(line.subject), formatBeijingTime(line.createdAt), formatBeijingTime(line.finishedAt),
      "\t", "\t", "\t", "\t", `${SIMULATED_BUYER.logonId}\t`, amount, amount, "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00\t", "0.00",
      `${line.batchNo ?? ""}\t`, formatSignedYuan(line.feeFen), "0.00", csvCell(line.subject),
    ].join(",");
  });
  return [
    ...billHead("业务明细", account, bill.date, "业务明细列表"),
    DETAIL_HEADER.join(","),
    ...rows,
    "#-----------------------------------------业务明细列表结束------------------------------------",
    `#交易合计：${payments.length}笔，商家实收共${formatSignedYuan(sum(payments))}元，商家优惠共0.00元`,
    `#退款合计：${refunds.length}笔，商家实收退款共${formatSignedYuan(sum(refunds))}元，商家优惠退款共0.00元`,
    `#导出时间：[${chineseTime(bill.exportedAt)}]`,
    "",
  ].join("\n");
}

function alipaySummaryCsv(account: string, bill: { date: string; lines: AlipayBillLine[]; exportedAt: Date }): string {
  const net = bill.lines.reduce((total, line) => total + line.amountFen, 0n);
  const fee = bill.lines.reduce((total, line) => total + line.feeFen, 0n);
  const payments = bill.lines.filter((line) => line.type === "交易").length;
  const refunds = bill.lines.length - payments;
  const total = ["合计", "", String(payments), String(refunds), formatSignedYuan(net), formatSignedYuan(net), "0.00", "0.00", "0.00", formatSignedYuan(fee), "0.00", formatSignedYuan(net + fee)];
  return [
    ...billHead("业务汇总", account, bill.date, "业务汇总列表"),
    SUMMARY_HEADER.join(","),
    total.join(","),
    "#-----------------------------------------业务汇总列表结束-----------------------------------",
    `#导出时间：[${chineseTime(bill.exportedAt)}]`,
    "",
  ].join("\n");
}

/** "2024年01月02日 09:04:55", Beijing time. */
function chineseTime(date: Date): string {
  const [day, time] = formatBeijingTime(date).split(" ") as [string, string];
  const [y, m, d] = day.split("-");
  return `${y}年${m}月${d}日 ${time}`;
}

function formatSignedYuan(fen: bigint): string {
  return fen < 0n ? `-${formatYuan(-fen)}` : formatYuan(fen);
}

function csvCell(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// ---- Signatures ----------------------------------------------------------------------------------------

/**
 * Alipay's string to sign: the parameters but the excluded ones, sorted by name, `k=v` joined by `&`. Requests
 * drop empty values first (Alipay's signing rules for requests: 剔除值为空的参数). What Alipay sends (notifications,
 * the sync return) is verified over every field it carries, an empty one as `k=` (alipay-sdk's checkNotifySignV2
 * and the Java SDK's rsaCheckV1/V2 filter names, never values), so that is how it is signed.
 */
function signingContent(params: Params, excluded: string[], { dropEmpty }: { dropEmpty: boolean }): string {
  return Object.keys(params)
    .filter((name) => !excluded.includes(name) && !(dropEmpty && params[name] === ""))
    .sort()
    .map((name) => `${name}=${params[name]}`)
    .join("&");
}

/**
 * Notifications (and page-pay returns) leave both sign and sign_type out of the signed string. Exported so tests
 * can craft notifications the simulator never sends (signed by another key, for another order); a benchmark
 * signing thousands passes the key parsed once (a KeyObject), as parsing the PEM costs more than the signature.
 */
export function signNotification(fields: Params, alipayPrivateKey: string | KeyObject): Params {
  const sign = signRsa2(signingContent(fields, ["sign", "sign_type"], { dropEmpty: false }), alipayPrivateKey);
  return { ...fields, sign_type: "RSA2", sign };
}

function signRsa2(content: string, privateKey: string | KeyObject): string {
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
