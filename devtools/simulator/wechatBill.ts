/**
 * The simulated WeChat Pay's daily bills, written as WeChat writes them (申请交易账单 bill_type=ALL, 申请资金账单
 * account_type=BASIC): UTF-8 CSV, a header row, data rows whose every field starts with a backquote (`) so that
 * spreadsheet programs keep long numbers as text, then a summary header row and a summary row; amounts in yuan with
 * two decimals, fees (手续费) with five. Amounts are computed from integer fen; nothing here goes through a float.
 */
import { toWechatTime } from "../../server/payments/gateways/wechat";

/** A payment line of the trade bill. */
export type TradeBillPayment = {
  at: Date;
  appId: string;
  mchId: string;
  transactionId: string;
  outTradeNo: string;
  openId: string;
  tradeType: string;
  amountFen: bigint;
  /** Thousandths of a fen (WeChat's 0.6 % of 1 fen is 6). */
  feeMilliFen: bigint;
  description: string;
};

/** A refund line of the trade bill (交易状态 REFUND); its fee is the part of the payment's fee given back, negative. */
export type TradeBillRefund = Omit<TradeBillPayment, "amountFen" | "feeMilliFen"> & {
  refundId: string;
  outRefundNo: string;
  refundFen: bigint;
  feeMilliFen: bigint;
};

const TRADE_BILL_HEADER = [
  "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型", "交易状态",
  "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型",
  "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
];
const TRADE_SUMMARY_HEADER = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额"];
const FUND_FLOW_HEADER = [
  "记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额(元)", "账户结余(元)", "资金变更提交申请人", "备注", "业务凭证号",
];
const FUND_FLOW_SUMMARY_HEADER = ["资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"];

/** WeChat's standard rate for these trade types. */
export const WECHAT_FEE_RATE = "0.60%";

export function renderTradeBill(payments: TradeBillPayment[], refunds: TradeBillRefund[]): string {
  const rows: string[][] = [];
  for (const p of payments) {
    rows.push([
      billTime(p.at), p.appId, p.mchId, "0", "", p.transactionId, p.outTradeNo, p.openId, p.tradeType, "SUCCESS",
      "OTHERS", "CNY", yuan(p.amountFen), "0.00", "0", "0", "0.00", "0.00", "", "", p.description, "", feeYuan(p.feeMilliFen), WECHAT_FEE_RATE,
      yuan(p.amountFen), "0.00", "",
    ]);
  }
  for (const r of refunds) {
    rows.push([
      billTime(r.at), r.appId, r.mchId, "0", "", r.transactionId, r.outTradeNo, r.openId, r.tradeType, "REFUND",
      "OTHERS", "CNY", "0.00", "0.00", r.refundId, r.outRefundNo, yuan(r.refundFen), "0.00", "ORIGINAL", "SUCCESS", r.description, "",
      feeYuan(r.feeMilliFen), WECHAT_FEE_RATE, "0.00", yuan(r.refundFen), "",
    ]);
  }
  const paymentFen = payments.reduce((sum, p) => sum + p.amountFen, 0n);
  const refundFen = refunds.reduce((sum, r) => sum + r.refundFen, 0n);
  const feeMilliFen = [...payments, ...refunds].reduce((sum, line) => sum + line.feeMilliFen, 0n);
  const summary = [String(rows.length), yuan(paymentFen), yuan(refundFen), "0.00", feeYuan(feeMilliFen), yuan(paymentFen), yuan(refundFen)];
  return csv([TRADE_BILL_HEADER, ...rows.map(backquoted), TRADE_SUMMARY_HEADER, backquoted(summary)]);
}

/** A line of the BASIC account's fund flow: money in (a payment) or out (a refund). */
export type FundFlowLine = { at: Date; businessNo: string; flowNo: string; kind: "income" | "expense"; amountFen: bigint; voucherNo: string };

export function renderFundFlowBill(lines: FundFlowLine[], openingBalanceFen: bigint): string {
  let balance = openingBalanceFen;
  const rows = lines.map((line) => {
    balance += line.kind === "income" ? line.amountFen : -line.amountFen;
    const [name, type] = line.kind === "income" ? ["交易", "交易"] : ["退款", "退款"];
    return [billTime(line.at), line.businessNo, line.flowNo, name, type, line.kind === "income" ? "收入" : "支出", yuan(line.amountFen), yuan(balance), "system", "", line.voucherNo];
  });
  const incomes = lines.filter((l) => l.kind === "income");
  const expenses = lines.filter((l) => l.kind === "expense");
  const total = (ls: FundFlowLine[]) => ls.reduce((sum, l) => sum + l.amountFen, 0n);
  const summary = [String(lines.length), String(incomes.length), yuan(total(incomes)), String(expenses.length), yuan(total(expenses))];
  return csv([FUND_FLOW_HEADER, ...rows.map(backquoted), FUND_FLOW_SUMMARY_HEADER, backquoted(summary)]);
}

function backquoted(fields: string[]): string[] {
  return fields.map((field) => `\`${field}`);
}

/** Fields never contain a comma, quote or line break here except descriptions, which are quoted when they do. */
function csv(rows: string[][]): string {
  return `${rows.map((fields) => fields.map(quoteIfNeeded).join(",")).join("\r\n")}\r\n`;
}

function quoteIfNeeded(field: string): string {
  return /[",\r\n]/.test(field) ? `"${field.replace(/"/g, '""')}"` : field;
}

/** `2024-01-01 12:00:00`, Beijing time. */
function billTime(at: Date): string {
  return toWechatTime(at).slice(0, 19).replace("T", " ");
}

/** Fen as yuan with two decimals: -1234 → "-12.34". */
export function yuan(fen: bigint): string {
  const sign = fen < 0n ? "-" : "";
  const abs = fen < 0n ? -fen : fen;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
}

/** Thousandths of a fen as yuan with five decimals: 6 → "0.00006", -600 → "-0.00600". */
export function feeYuan(milliFen: bigint): string {
  const sign = milliFen < 0n ? "-" : "";
  const abs = milliFen < 0n ? -milliFen : milliFen;
  return `${sign}${abs / 100_000n}.${(abs % 100_000n).toString().padStart(5, "0")}`;
}
