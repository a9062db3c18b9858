import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { zipSync } from "fflate";
import iconv from "iconv-lite";
import { GatewayError } from "../gateway";
import { BILL_REFUSED, parseSignedYuan, readAlipayTradeBill } from "./alipayBill";

/**
 * Alipay's trade bill as Alipay writes it (the layout of real 业务明细 files: comment header, padded cells,
 * negative refunds, 合计 lines; and the 汇总 file's 合计 row), written here by hand, not by our simulator.
 */

const HEADER =
  "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

const ROWS = [
  "2026031022001458860515315453\t,fp0000000000000000000001\t,交易\t,Gas quota top-up,2026-03-10 10:55:16,2026-03-10 10:55:23,\t,\t,\t,\t,*津水(602***@qq.com)\t,100.00,100.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,-0.60,0.00,Gas quota top-up",
  "2026031022001458860515315453\t,fp0000000000000000000001\t,退款\t,Gas quota top-up,2026-03-10 10:55:16,2026-03-10 18:02:48,\t,\t,\t,\t,*津水(602***@qq.com)\t,-30.00,-30.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,rf0123456789abcdef01234567\t,0.18,0.00,Gas quota top-up",
  "2026031022001465870515233238\t,fp0000000000000000000002\t,交易\t,\"Gas, quota\",2026-03-10 23:58:56,2026-03-10 23:59:59,\t,\t,\t,\t,*庚辰(182****01)\t,0.01,0.01,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,",
];

function detail(overrides: { rows?: string[]; totals?: string[]; start?: string; end?: string } = {}): string {
  return [
    "#支付宝业务明细查询",
    "#账号：[20880211096256330156]",
    `#起始日期：[${overrides.start ?? "2026年03月10日"} 00:00:00]   终止日期：[${overrides.end ?? "2026年03月11日"} 00:00:00]`,
    "#-----------------------------------------业务明细列表----------------------------------------",
    HEADER,
    ...(overrides.rows ?? ROWS),
    "#-----------------------------------------业务明细列表结束------------------------------------",
    ...(overrides.totals ?? ["#交易合计：2笔，商家实收共100.01元，商家优惠共0.00元", "#退款合计：1笔，商家实收退款共-30.00元，商家优惠退款共0.00元"]),
    "#导出时间：[2026年03月11日 05:46:49]",
  ].join("\r\n");
}

function summary(total = "合计,,2,1,70.01,70.01,0.00,0.00,0.00,-0.42,0.00,69.59"): string {
  return [
    "#支付宝业务汇总查询",
    "#账号：[20880211096256330156]",
    "#起始日期：[2026年03月10日 00:00:00]   终止日期：[2026年03月11日 00:00:00]",
    "#-----------------------------------------业务汇总列表----------------------------------------",
    "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）",
    total,
    "#-----------------------------------------业务汇总列表结束-----------------------------------",
    "#导出时间：[2026年03月11日 05:46:49]",
  ].join("\r\n");
}

function zip(files: { detail?: string | null; summary?: string | null } = {}): Uint8Array {
  const entries: Record<string, Uint8Array> = {};
  if (files.detail !== null) entries["20880211096256330156_20260310_业务明细.csv"] = iconv.encode(files.detail ?? detail(), "gbk");
  if (files.summary !== null) entries["20880211096256330156_20260310_业务明细(汇总).csv"] = iconv.encode(files.summary ?? summary(), "gbk");
  return zipSync(entries);
}

function refusedWith(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof GatewayError, String(error));
    assert.equal(error.gatewayCode, BILL_REFUSED);
    assert.match(error.message, pattern);
    return true;
  };
}

describe("Alipay trade bill reader", () => {
  it("reads payments and refunds into exact fen, fees into thousandths of a fen (positive when charged), times in Beijing time", () => {
    const bill = readAlipayTradeBill("2026-03-10", zip());
    assert.equal(bill.provider, "alipay");
    assert.equal(bill.date, "2026-03-10");
    assert.deepEqual(bill.entries, [
      { kind: "payment", orderId: "fp0000000000000000000001", gatewayTradeNo: "2026031022001458860515315453", amountFen: 10_000n, feeMilliFen: 60_000n, at: new Date("2026-03-10T02:55:23Z") },
      {
        kind: "refund",
        orderId: "fp0000000000000000000001",
        refundId: "rf0123456789abcdef01234567",
        gatewayRefundNo: "2026031022001458860515315453/rf0123456789abcdef01234567",
        amountFen: 3_000n,
        feeMilliFen: -18_000n,
        at: new Date("2026-03-10T10:02:48Z"),
      },
      { kind: "payment", orderId: "fp0000000000000000000002", gatewayTradeNo: "2026031022001465870515233238", amountFen: 1n, feeMilliFen: 0n, at: new Date("2026-03-10T15:59:59Z") },
    ]);
    assert.deepEqual(bill.summary, { paymentCount: 2, paymentFen: 10_001n, refundCount: 1, refundFen: 3_000n, feeMilliFen: 42_000n });
    assert.deepEqual([...bill.source.files].sort(), ["20880211096256330156_20260310_业务明细(汇总).csv", "20880211096256330156_20260310_业务明细.csv"]);
  });

  it("reads Alipay's own zips, whose file names are GBK without the zip's UTF-8 flag", () => {
    const gbkName = (name: string) => iconv.encode(name, "gbk");
    const detailName = gbkName("20880211096256330156_20260310_业务明细.csv");
    const summaryName = gbkName("20880211096256330156_20260310_业务明细(汇总).csv");
    // zip under ASCII stand-ins of the same byte length (no UTF-8 flag), then put the GBK bytes in their place
    const standIn = (bytes: Buffer, mark: string) => mark.repeat(bytes.length);
    const archive = Buffer.from(
      zipSync({ [standIn(detailName, "D")]: iconv.encode(detail(), "gbk"), [standIn(summaryName, "S")]: iconv.encode(summary(), "gbk") }),
    );
    for (const [bytes, mark] of [[detailName, "D"], [summaryName, "S"]] as const) {
      const placeholder = Buffer.from(standIn(bytes, mark), "latin1");
      for (let at = archive.indexOf(placeholder); at >= 0; at = archive.indexOf(placeholder, at + 1)) bytes.copy(archive, at);
    }
    assert.ok(archive.includes(detailName) && !archive.includes(Buffer.from("业务明细", "utf8")), "GBK names in the archive");
    const bill = readAlipayTradeBill("2026-03-10", new Uint8Array(archive));
    assert.equal(bill.entries.length, 3);
    assert.deepEqual([...bill.source.files].sort(), ["20880211096256330156_20260310_业务明细(汇总).csv", "20880211096256330156_20260310_业务明细.csv"]);
  });

  it("reads a bill with both counts on one 合计 line (#交易合计：N笔，退款合计：M笔)", () => {
    const bill = readAlipayTradeBill("2026-03-10", zip({ detail: detail({ totals: ["#交易合计：2笔，退款合计：1笔"] }) }));
    assert.equal(bill.entries.length, 3);
  });

  it("refuses a bill whose rows do not add up to its 交易合计 line", () => {
    const rows = [ROWS[0]!.replace(",100.00,100.00,", ",100.01,100.01,"), ROWS[1]!, ROWS[2]!];
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ detail: detail({ rows }) })), refusedWith(/交易合计 商家实收 says 10001 but the rows add up to 10002/));
  });

  it("refuses a bill whose counts are not its rows' (a row lost)", () => {
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ detail: detail({ rows: [ROWS[0]!, ROWS[1]!] }) })), refusedWith(/交易合计 笔数 says 2 but the rows add up to 1/));
  });

  it("refuses a bill whose 汇总 合计 row disagrees with the detail (service fee)", () => {
    const wrongFee = summary("合计,,2,1,70.01,70.01,0.00,0.00,0.00,-0.43,0.00,69.58");
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ summary: wrongFee })), refusedWith(/汇总 服务费（元） says -43000 but the rows add up to -42000/));
  });

  it("refuses another day's bill, a truncated file, a missing file and a zip that is none", () => {
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ detail: detail({ start: "2026年03月09日", end: "2026年03月10日" }) })), refusedWith(/bill for 2026-03-09 to 2026-03-10/));
    const truncated = detail().split("\r\n").slice(0, 6).join("\r\n");
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ detail: truncated })), refusedWith(/no end marker/));
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ summary: null })), refusedWith(/no 业务明细\(汇总\) file/));
    assert.throws(() => readAlipayTradeBill("2026-03-10", new TextEncoder().encode("<html>expired</html>")), refusedWith(/not a zip/));
  });

  it("refuses an unknown 业务类型 and an amount that is not a yuan amount with at most two decimals", () => {
    const frozen = [ROWS[0]!, ROWS[1]!, ROWS[2]!.replace(",交易\t,", ",冻结\t,")];
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ detail: detail({ rows: frozen }) })), refusedWith(/unknown 业务类型 "冻结"/));
    const float = [ROWS[0]!, ROWS[1]!, ROWS[2]!.replace(",0.01,0.01,", ",0.011,0.01,")];
    assert.throws(() => readAlipayTradeBill("2026-03-10", zip({ detail: detail({ rows: float }) })), refusedWith(/订单金额（元） "0.011" is not a yuan amount/));
  });

  it("parses signed yuan strings by string arithmetic", () => {
    assert.equal(parseSignedYuan("-0.60"), -60n);
    assert.equal(parseSignedYuan("92233720368547758.07"), 9_223_372_036_854_775_807n);
    assert.equal(parseSignedYuan("12.3"), 1_230n);
    assert.equal(parseSignedYuan(""), 0n);
    for (const text of ["1.234", "+1", "1e2", "01.00", " 1", "--1"]) assert.equal(parseSignedYuan(text), undefined, text);
  });
});
