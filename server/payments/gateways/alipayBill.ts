/**
 * Alipay's daily trade bill (`bill_type=trade`, 业务明细): the zip `alipay.data.dataservice.bill.downloadurl.query`
 * points at, read into a GatewayBill. No I/O here: the adapter downloads, this checks and parses.
 *
 * The zip holds two GBK-encoded CSV files, told apart by their first line:
 * - 业务明细 (`#支付宝业务明细查询`): `#` header lines (账号, 起始日期/终止日期), a column header row, one row per
 *   payment (业务类型 交易) or refund (退款, negative amounts, 退款批次号/请求号 = the merchant's out_request_no), the
 *   end marker `#…业务明细列表结束…`, then `#交易合计：N笔，商家实收共X元，…` and `#退款合计：M笔，商家实收退款共-Y元，…`;
 * - 业务明细(汇总) (`#支付宝业务汇总查询`): one row per store and a 合计 row (counts, 订单金额, 商家实收, 服务费).
 * Cells are often padded with trailing tabs or spaces (so Excel keeps long numbers as text); columns are found by
 * name, never by position. Amounts are read as decimal strings into integer fen, never through floating point.
 *
 * A bill whose rows do not add up to its own totals (either file's) is refused: reconciling against it would
 * report differences that are the file's, not the money's.
 */
import { unzipSync } from "fflate";
import { parse } from "csv-parse/sync";
import iconv from "iconv-lite";
import { type BillEntry, type BillSummary, GatewayError, type GatewayBill } from "../gateway";

/** The gateway code our refusals carry, so a caller can tell a bad file from a refused request. */
export const BILL_REFUSED = "BILL_INCONSISTENT";

const DETAIL_TITLE = "#支付宝业务明细查询";
const SUMMARY_TITLE = "#支付宝业务汇总查询";
const DETAIL_END = /^#-+业务明细列表结束-+/;
const SUMMARY_END = /^#-+业务汇总列表结束-+/;

/** The 业务明细 columns we read (the file has more: 门店, 操作员, 券, 分润…). */
const COLUMNS = {
  tradeNo: "支付宝交易号",
  orderId: "商户订单号",
  type: "业务类型",
  createdAt: "创建时间",
  finishedAt: "完成时间",
  amount: "订单金额（元）",
  received: "商家实收（元）",
  merchantDiscount: "商家优惠（元）",
  refundBatch: "退款批次号/请求号",
  fee: "服务费（元）",
} as const;
const SUMMARY_COLUMNS = {
  store: "门店编号",
  payments: "交易订单总笔数",
  refunds: "退款订单总笔数",
  amount: "订单金额（元）",
  received: "商家实收（元）",
  fee: "服务费（元）",
} as const;

type Row = Record<string, string>;

/**
 * Reads the zip Alipay serves for `date` (YYYY-MM-DD, Beijing time). Throws a GatewayError (code BILL_INCONSISTENT)
 * naming what is wrong: not a zip, a file missing, another day's bill, an unknown 业务类型, a malformed amount or
 * time, rows that do not add up to the totals.
 */
export function readAlipayTradeBill(date: string, zip: Uint8Array): GatewayBill {
  const files = unzipBill(date, zip);
  const detail = files.find((file) => file.text.startsWith(DETAIL_TITLE));
  const summary = files.find((file) => file.text.startsWith(SUMMARY_TITLE));
  if (!detail) throw refused(date, `no 业务明细 file (${DETAIL_TITLE}) in the zip`);
  if (!summary) throw refused(date, `no 业务明细(汇总) file (${SUMMARY_TITLE}) in the zip`);

  const details = readDetailFile(date, detail.text);
  const entries = details.rows.map((row, index) => entryFrom(date, row, index));
  const billSummary = summariseEntries(entries);
  checkDetailTotals(date, details, billSummary);
  checkSummaryFile(date, readSummaryFile(date, summary.text), details.rows, billSummary);
  return { provider: "alipay", date, entries, summary: billSummary, source: { files: files.map((file) => file.name) } };
}

// ---- Files ---------------------------------------------------------------------------------------------

function unzipBill(date: string, zip: Uint8Array): { name: string; text: string }[] {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(zip);
  } catch {
    throw refused(date, "the download is not a zip file");
  }
  return Object.entries(entries)
    .filter(([name]) => !name.endsWith("/"))
    .map(([name, bytes]) => ({ name: zipEntryName(name), text: iconv.decode(Buffer.from(bytes), "gbk").replace(/^\uFEFF/, "") }));
}

/**
 * Alipay's zips name their files in GBK without the zip's UTF-8 flag, which the unzipper then reads as Latin-1:
 * such a name is turned back into its bytes and read as GBK. A name flagged UTF-8 (or plain ASCII) stays as it is.
 */
function zipEntryName(name: string): string {
  const latin1Only = [...name].every((char) => char.charCodeAt(0) <= 0xff);
  return latin1Only && /[\u0080-\u00ff]/.test(name) ? iconv.decode(Buffer.from(name, "latin1"), "gbk") : name;
}

type DetailFile = { rows: Row[]; comments: string[] };

function readDetailFile(date: string, text: string): DetailFile {
  const lines = text.split(/\r?\n/);
  const end = lines.findIndex((line) => DETAIL_END.test(line));
  if (end < 0) throw refused(date, "the 业务明细 file has no end marker (#…业务明细列表结束…): truncated?");
  const comments = lines.filter((line, index) => line.startsWith("#") && (index < end || index > end));
  checkDay(date, comments);
  const table = lines.slice(0, end).filter((line) => line.trim() !== "" && !line.startsWith("#"));
  return { rows: readTable(date, "业务明细", table, Object.values(COLUMNS)), comments: lines.slice(end + 1) };
}

function readSummaryFile(date: string, text: string): Row[] {
  const lines = text.split(/\r?\n/);
  const end = lines.findIndex((line) => SUMMARY_END.test(line));
  const table = (end < 0 ? lines : lines.slice(0, end)).filter((line) => line.trim() !== "" && !line.startsWith("#"));
  return readTable(date, "业务明细(汇总)", table, Object.values(SUMMARY_COLUMNS));
}

/** A header row and its data rows; every cell trimmed of the padding Alipay adds. */
function readTable(date: string, file: string, lines: string[], required: readonly string[]): Row[] {
  if (lines.length === 0) throw refused(date, `the ${file} file has no column header row`);
  let records: string[][];
  try {
    records = parse(lines.join("\n"), { relax_column_count: false, skip_empty_lines: true }) as string[][];
  } catch (error) {
    throw refused(date, `the ${file} file is not CSV: ${(error as Error).message}`);
  }
  const [header, ...data] = records.map((record) => record.map((cell) => cell.trim()));
  const missing = required.filter((column) => !header!.includes(column));
  if (missing.length > 0) throw refused(date, `the ${file} file lacks the column(s) ${missing.join(", ")}`);
  return data.map((cells) => Object.fromEntries(header!.map((column, index) => [column, cells[index] ?? ""])));
}

/** `#起始日期：[2024年01月01日 00:00:00]   终止日期：[2024年01月02日 00:00:00]` must be the day asked for. */
function checkDay(date: string, comments: string[]): void {
  const line = comments.find((comment) => comment.includes("起始日期"));
  const match = line && /起始日期：\[(\d{4})年(\d{2})月(\d{2})日 00:00:00\]\s*终止日期：\[(\d{4})年(\d{2})月(\d{2})日 00:00:00\]/.exec(line);
  if (!match) throw refused(date, "the 业务明细 file has no 起始日期/终止日期 line");
  const start = `${match[1]}-${match[2]}-${match[3]}`;
  const end = `${match[4]}-${match[5]}-${match[6]}`;
  if (start !== date || end !== nextDay(date)) throw refused(date, `the file is the bill for ${start} to ${end}`);
}

// ---- Rows ----------------------------------------------------------------------------------------------

function entryFrom(date: string, row: Row, index: number): BillEntry {
  const where = `业务明细 row ${index + 1}`;
  const tradeNo = row[COLUMNS.tradeNo]!;
  const orderId = row[COLUMNS.orderId]!;
  if (!tradeNo || !orderId) throw refused(date, `${where}: 支付宝交易号 or 商户订单号 is empty`);
  const amount = money(date, where, COLUMNS.amount, row[COLUMNS.amount]!);
  const fee = money(date, where, COLUMNS.fee, row[COLUMNS.fee]!);
  const at = beijingTime(date, where, row[COLUMNS.finishedAt]!);
  // 服务费 is signed from the merchant's side: negative what Alipay keeps, positive what a refund gives back.
  // Our feeMilliFen is what the merchant pays: positive for a payment, negative for a refund's returned fee.
  const feeMilliFen = -fee * 1000n;
  switch (row[COLUMNS.type]) {
    case "交易":
      if (amount <= 0n) throw refused(date, `${where}: a 交易 of ${row[COLUMNS.amount]} yuan`);
      return { kind: "payment", orderId, gatewayTradeNo: tradeNo, amountFen: amount, feeMilliFen, at };
    case "退款": {
      if (amount >= 0n) throw refused(date, `${where}: a 退款 of ${row[COLUMNS.amount]} yuan (refunds are negative)`);
      const batch = row[COLUMNS.refundBatch]!;
      if (!batch) throw refused(date, `${where}: a 退款 without 退款批次号/请求号`);
      // Alipay has no refund number of its own in the bill: the trade number and the batch number name a refund.
      return { kind: "refund", orderId, refundId: batch, gatewayRefundNo: `${tradeNo}/${batch}`, amountFen: -amount, feeMilliFen, at };
    }
    default:
      throw refused(date, `${where}: unknown 业务类型 ${JSON.stringify(row[COLUMNS.type])}`);
  }
}

function summariseEntries(entries: BillEntry[]): BillSummary {
  const summary: BillSummary = { paymentCount: 0, paymentFen: 0n, refundCount: 0, refundFen: 0n, feeMilliFen: 0n };
  for (const entry of entries) {
    if (entry.kind === "payment") {
      summary.paymentCount += 1;
      summary.paymentFen += entry.amountFen;
    } else {
      summary.refundCount += 1;
      summary.refundFen += entry.amountFen;
    }
    summary.feeMilliFen += entry.feeMilliFen;
  }
  return summary;
}

// ---- Totals --------------------------------------------------------------------------------------------

/**
 * `#交易合计：6笔，商家实收共0.06元，商家优惠共0.00元` and `#退款合计：4笔，商家实收退款共-0.04元，商家优惠退款共0.00元`
 * (some bills put both counts on one line: `#交易合计：6笔，退款合计：4笔`). The counts must be there; the amounts,
 * when there, must be the rows' sums.
 */
function checkDetailTotals(date: string, file: DetailFile, summary: BillSummary): void {
  const text = file.comments.join("\n");
  const paymentCount = /交易合计：(\d+)笔/.exec(text);
  const refundCount = /退款合计：(\d+)笔/.exec(text);
  if (!paymentCount || !refundCount) throw refused(date, "the 业务明细 file has no 交易合计/退款合计 line");
  expectEqual(date, "交易合计 笔数", BigInt(paymentCount[1]!), BigInt(summary.paymentCount));
  expectEqual(date, "退款合计 笔数", BigInt(refundCount[1]!), BigInt(summary.refundCount));
  const sums = columnSums(date, file.rows);
  const totals: [RegExp, string, bigint][] = [
    [/商家实收共(\S+?)元/, "交易合计 商家实收", sums.paymentReceived],
    [/商家优惠共(\S+?)元/, "交易合计 商家优惠", sums.paymentDiscount],
    [/商家实收退款共(\S+?)元/, "退款合计 商家实收退款", sums.refundReceived],
    [/商家优惠退款共(\S+?)元/, "退款合计 商家优惠退款", sums.refundDiscount],
  ];
  for (const [pattern, what, sum] of totals) {
    const found = pattern.exec(text);
    if (found) expectEqual(date, what, money(date, what, what, found[1]!), sum);
  }
}

/** The 汇总 file's 合计 row must say what the detail rows say: counts, 订单金额, 商家实收, 服务费 (all net of refunds). */
function checkSummaryFile(date: string, rows: Row[], detail: Row[], summary: BillSummary): void {
  const total = rows.find((row) => row[SUMMARY_COLUMNS.store] === "合计");
  if (!total) throw refused(date, "the 业务明细(汇总) file has no 合计 row");
  const sums = columnSums(date, detail);
  const count = (column: string) => {
    const text = total[column]!;
    if (!/^\d+$/.test(text)) throw refused(date, `汇总 合计 ${column} is not a count: ${JSON.stringify(text)}`);
    return BigInt(text);
  };
  const amount = (column: string) => money(date, "汇总 合计", column, total[column]!);
  expectEqual(date, `汇总 ${SUMMARY_COLUMNS.payments}`, count(SUMMARY_COLUMNS.payments), BigInt(summary.paymentCount));
  expectEqual(date, `汇总 ${SUMMARY_COLUMNS.refunds}`, count(SUMMARY_COLUMNS.refunds), BigInt(summary.refundCount));
  expectEqual(date, `汇总 ${SUMMARY_COLUMNS.amount}`, amount(SUMMARY_COLUMNS.amount), summary.paymentFen - summary.refundFen);
  expectEqual(date, `汇总 ${SUMMARY_COLUMNS.received}`, amount(SUMMARY_COLUMNS.received), sums.paymentReceived + sums.refundReceived);
  expectEqual(date, `汇总 ${SUMMARY_COLUMNS.fee}`, amount(SUMMARY_COLUMNS.fee) * 1000n, -summary.feeMilliFen);
}

function columnSums(date: string, rows: Row[]) {
  const sums = { paymentReceived: 0n, paymentDiscount: 0n, refundReceived: 0n, refundDiscount: 0n };
  for (const [index, row] of rows.entries()) {
    const where = `业务明细 row ${index + 1}`;
    const received = money(date, where, COLUMNS.received, row[COLUMNS.received]!);
    const discount = money(date, where, COLUMNS.merchantDiscount, row[COLUMNS.merchantDiscount]!);
    if (row[COLUMNS.type] === "交易") {
      sums.paymentReceived += received;
      sums.paymentDiscount += discount;
    } else {
      sums.refundReceived += received;
      sums.refundDiscount += discount;
    }
  }
  return sums;
}

function expectEqual(date: string, what: string, stated: bigint, computed: bigint): void {
  if (stated !== computed) throw refused(date, `${what} says ${stated} but the rows add up to ${computed} (fen, fees in thousandths of a fen)`);
}

// ---- Values --------------------------------------------------------------------------------------------

const SIGNED_YUAN = /^(-)?(0|[1-9]\d*)(?:\.(\d{1,2}))?$/;

/** "-12.30" → -1230n fen, by string arithmetic. An empty cell is 0 (Alipay leaves unused money columns empty). */
export function parseSignedYuan(text: string): bigint | undefined {
  if (text === "") return 0n;
  const match = SIGNED_YUAN.exec(text);
  if (!match) return undefined;
  const fen = BigInt(match[2]!) * 100n + BigInt((match[3] ?? "").padEnd(2, "0"));
  return match[1] ? -fen : fen;
}

function money(date: string, where: string, column: string, text: string): bigint {
  const fen = parseSignedYuan(text);
  if (fen === undefined) throw refused(date, `${where}: ${column} ${JSON.stringify(text)} is not a yuan amount`);
  return fen;
}

/** "2024-01-01 10:00:05", China Standard Time. */
function beijingTime(date: string, where: string, text: string): Date {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$/.exec(text);
  const at = match ? new Date(`${match[1]}T${match[2]}+08:00`) : undefined;
  if (!at || Number.isNaN(at.getTime())) throw refused(date, `${where}: 完成时间 ${JSON.stringify(text)} is not a time`);
  return at;
}

function nextDay(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

function refused(date: string, why: string): GatewayError {
  return new GatewayError(`Alipay trade bill ${date}: ${why}`, "alipay", BILL_REFUSED);
}
