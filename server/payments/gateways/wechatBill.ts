/**
 * WeChat Pay v3 bill files, parsed exactly: the trade bill (申请交易账单, bill_type=ALL) and the BASIC account's
 * fund-flow bill (申请资金账单). Both are CSV: a header row, data rows whose every field starts with a backquote,
 * then a summary header row and one summary row. Amounts are yuan with two decimals (fees, 手续费, five), turned into
 * integer fen (thousandths of a fen for fees) by string arithmetic. A bill whose lines do not add up to its own
 * summary is refused: it was cut short or changed, and reconciling against it would report false differences.
 */
import { parse } from "csv-parse/sync";
import { type BillEntry, type BillSummary, type FundFlowSummary, GatewayError } from "../gateway";

export type ParsedTradeBill = { entries: BillEntry[]; summary: BillSummary };

/** The columns read from the trade bill; the rest (coupons, rate, attach) are not needed here. */
const TRADE_COLUMNS = ["交易时间", "微信订单号", "商户订单号", "交易状态", "应结订单金额", "微信退款单号", "商户退款单号", "退款金额", "退款状态", "手续费"] as const;
const TRADE_SUMMARY_COLUMNS = ["总交易单数", "应结订单总金额", "退款总金额", "手续费总金额"] as const;
const FUND_FLOW_COLUMNS = ["记账时间", "收支类型", "收支金额(元)"] as const;
const FUND_FLOW_SUMMARY_COLUMNS = ["资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"] as const;

export function parseWechatTradeBill(text: string): ParsedTradeBill {
  const { rows, summary } = splitBill(text, "trade bill", TRADE_COLUMNS, TRADE_SUMMARY_COLUMNS);
  const entries: BillEntry[] = [];
  let rowCount = 0;
  let paymentFen = 0n;
  let refundFen = 0n;
  let feeMilliFen = 0n;
  for (const [index, row] of rows.entries()) {
    const where = `trade bill line ${index + 2}`;
    rowCount++;
    const at = parseBillTime(row["交易时间"]!, where);
    const settledFen = parseYuan(row["应结订单金额"]!, `${where} 应结订单金额`);
    const refundedFen = parseYuan(row["退款金额"]!, `${where} 退款金额`);
    const fee = parseFeeYuan(row["手续费"]!, `${where} 手续费`);
    paymentFen += settledFen;
    refundFen += refundedFen;
    feeMilliFen += fee;
    const orderId = row["商户订单号"]!;
    const gatewayTradeNo = row["微信订单号"]!;
    const state = row["交易状态"]!;
    if (state === "REFUND") {
      const refundStatus = row["退款状态"]!;
      // a refund still PROCESSING (or ABNORMAL) counts in the summary but has not moved money yet
      if (refundStatus !== "SUCCESS") continue;
      const outRefundNo = row["商户退款单号"]!;
      entries.push({
        kind: "refund",
        orderId,
        ...(outRefundNo !== "" && outRefundNo !== "0" ? { refundId: outRefundNo } : {}),
        gatewayRefundNo: row["微信退款单号"]!,
        amountFen: refundedFen,
        feeMilliFen: fee,
        at,
      });
    } else if (state === "SUCCESS") {
      entries.push({ kind: "payment", orderId, gatewayTradeNo, amountFen: settledFen, feeMilliFen: fee, at });
    } else {
      // the ALL bill lists paid trades (SUCCESS) and refunds (REFUND); anything else is a format we do not know
      throw billError(`${where}: 交易状态 ${state} is neither SUCCESS nor REFUND`);
    }
  }
  const stated = {
    rowCount: parseCount(summary["总交易单数"]!, "trade bill 总交易单数"),
    paymentFen: parseYuan(summary["应结订单总金额"]!, "trade bill 应结订单总金额"),
    refundFen: parseYuan(summary["退款总金额"]!, "trade bill 退款总金额"),
    feeMilliFen: parseFeeYuan(summary["手续费总金额"]!, "trade bill 手续费总金额"),
  };
  assertAddsUp("trade bill", [
    ["总交易单数", BigInt(stated.rowCount), BigInt(rowCount)],
    ["应结订单总金额 (fen)", stated.paymentFen, paymentFen],
    ["退款总金额 (fen)", stated.refundFen, refundFen],
    ["手续费总金额 (milli-fen)", stated.feeMilliFen, feeMilliFen],
  ]);
  const payments = entries.filter((e) => e.kind === "payment");
  return {
    entries,
    summary: {
      paymentCount: payments.length,
      paymentFen: stated.paymentFen,
      refundCount: rowCount - payments.length,
      refundFen: stated.refundFen,
      feeMilliFen: stated.feeMilliFen,
    },
  };
}

export function parseWechatFundFlowBill(text: string): FundFlowSummary {
  const { rows, summary } = splitBill(text, "fund-flow bill", FUND_FLOW_COLUMNS, FUND_FLOW_SUMMARY_COLUMNS);
  const lines = { income: { count: 0, fen: 0n }, expense: { count: 0, fen: 0n } };
  for (const [index, row] of rows.entries()) {
    const where = `fund-flow bill line ${index + 2}`;
    parseBillTime(row["记账时间"]!, where);
    const direction = row["收支类型"] === "收入" ? lines.income : row["收支类型"] === "支出" ? lines.expense : undefined;
    if (!direction) throw billError(`${where}: 收支类型 ${row["收支类型"]} is neither 收入 nor 支出`);
    direction.count++;
    direction.fen += parseYuan(row["收支金额(元)"]!, `${where} 收支金额`);
  }
  const stated: FundFlowSummary = {
    incomeCount: parseCount(summary["收入笔数"]!, "fund-flow bill 收入笔数"),
    incomeFen: parseYuan(summary["收入金额"]!, "fund-flow bill 收入金额"),
    expenseCount: parseCount(summary["支出笔数"]!, "fund-flow bill 支出笔数"),
    expenseFen: parseYuan(summary["支出金额"]!, "fund-flow bill 支出金额"),
  };
  assertAddsUp("fund-flow bill", [
    ["资金流水总笔数", BigInt(parseCount(summary["资金流水总笔数"]!, "fund-flow bill 资金流水总笔数")), BigInt(rows.length)],
    ["收入笔数", BigInt(stated.incomeCount), BigInt(lines.income.count)],
    ["收入金额 (fen)", stated.incomeFen, lines.income.fen],
    ["支出笔数", BigInt(stated.expenseCount), BigInt(lines.expense.count)],
    ["支出金额 (fen)", stated.expenseFen, lines.expense.fen],
  ]);
  return stated;
}

// ---------------------------------------------------------------------------------------------------------------

type Row = Record<string, string>;

/** The data rows (by header name, backquotes removed) and the summary row, with the columns we read checked present. */
function splitBill(text: string, what: string, columns: readonly string[], summaryColumns: readonly string[]): { rows: Row[]; summary: Row } {
  let records: string[][];
  try {
    records = parse(text, { bom: true, relax_column_count: true, skip_empty_lines: true, trim: false }) as string[][];
  } catch (error) {
    throw billError(`${what} is not CSV: ${(error as Error).message}`);
  }
  const header = records[0]?.map(normalizeHeader);
  if (!header || !columns.every((c) => header.includes(c))) throw billError(`${what} lacks its header row (${columns.join(",")})`);
  const summaryAt = records.findIndex((record, i) => i > 0 && normalizeHeader(record[0] ?? "") === summaryColumns[0]);
  if (summaryAt < 0 || records.length !== summaryAt + 2) throw billError(`${what} lacks its summary rows, or has lines after them: cut short?`);
  const summaryHeader = records[summaryAt]!.map(normalizeHeader);
  if (!summaryColumns.every((c) => summaryHeader.includes(c))) throw billError(`${what} summary lacks ${summaryColumns.join(",")}`);
  const toRow = (names: string[], record: string[], where: string): Row => {
    if (record.length !== names.length) throw billError(`${what} ${where} has ${record.length} fields, its header ${names.length}`);
    return Object.fromEntries(names.map((name, i) => [name, unquote(record[i]!, `${what} ${where}`)]));
  };
  const rows = records.slice(1, summaryAt).map((record, i) => toRow(header, record, `line ${i + 2}`));
  return { rows, summary: toRow(summaryHeader, records[summaryAt + 1]!, "summary") };
}

/** Header names as WeChat writes them, whichever parentheses it uses (收支金额(元) / 收支金额（元）). */
function normalizeHeader(name: string): string {
  return name.trim().replace(/（/g, "(").replace(/）/g, ")");
}

/** Every data field starts with a backquote; an empty field is a lone backquote. */
function unquote(field: string, where: string): string {
  if (!field.startsWith("`")) throw billError(`${where}: field ${JSON.stringify(field.slice(0, 40))} does not start with a backquote`);
  return field.slice(1);
}

function parseBillTime(text: string, where: string): Date {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$/.exec(text);
  const at = match ? new Date(`${match[1]}T${match[2]}+08:00`) : undefined;
  if (!at || Number.isNaN(at.getTime())) throw billError(`${where}: time ${JSON.stringify(text)} is not YYYY-MM-DD hh:mm:ss`);
  return at;
}

/** "12.34" → 1234n, "-0.01" → -1n: exactly two decimals, as WeChat writes yuan. */
export function parseYuan(text: string, where: string): bigint {
  return parseDecimal(text, 2, where);
}

/** "0.00600" → 600n thousandths of a fen: exactly five decimals of a yuan. */
export function parseFeeYuan(text: string, where: string): bigint {
  return parseDecimal(text, 5, where);
}

function parseDecimal(text: string, decimals: number, where: string): bigint {
  const match = new RegExp(`^(-?)(\\d+)\\.(\\d{${decimals}})$`).exec(text);
  if (!match) throw billError(`${where}: ${JSON.stringify(text)} is not an amount with ${decimals} decimals`);
  const magnitude = BigInt(match[2]!) * 10n ** BigInt(decimals) + BigInt(match[3]!);
  return match[1] === "-" ? -magnitude : magnitude;
}

function parseCount(text: string, where: string): number {
  if (!/^\d{1,9}$/.test(text)) throw billError(`${where}: ${JSON.stringify(text)} is not a count`);
  return Number(text);
}

function assertAddsUp(what: string, checks: [string, bigint, bigint][]): void {
  const wrong = checks.filter(([, stated, summed]) => stated !== summed);
  if (wrong.length > 0) {
    throw billError(`${what} does not add up to its summary: ${wrong.map(([name, stated, summed]) => `${name} says ${stated}, lines sum to ${summed}`).join("; ")}`);
  }
}

function billError(message: string): GatewayError {
  return new GatewayError(`WeChat Pay ${message}`, "wechat", "BILL_INVALID");
}
