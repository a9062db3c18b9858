import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayError } from "../gateway";
import { parseFeeYuan, parseWechatFundFlowBill, parseWechatTradeBill, parseYuan } from "./wechatBill";

// Written by hand in the layout of WeChat Pay's documented ALL bill (not by the simulator): a payment and a refund.
const HEADER =
  "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const PAYMENT =
  "`2024-01-01 12:00:00,`wxd678efh567hg6787,`1230000109,`0,`,`4200000000202401010000000001,`ORDER20240101,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`0,`0,`0.00,`0.00,`,`,`Gas quota top-up,`,`0.07404,`0.60%,`12.34,`0.00,`";
const REFUND =
  "`2024-01-01 20:30:00,`wxd678efh567hg6787,`1230000109,`0,`,`4200000000202401010000000001,`ORDER20240101,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50000000382019052709732678859,`ORDER20240101R1,`2.34,`0.00,`ORIGINAL,`SUCCESS,`Gas quota top-up,`,`-0.01404,`0.60%,`0.00,`2.34,`";
const SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

function tradeBill(summary: string, rows = [PAYMENT, REFUND]): string {
  return `${[HEADER, ...rows, SUMMARY_HEADER, summary].join("\r\n")}\r\n`;
}

describe("WeChat trade bill parsing", () => {
  it("reads a payment and a refund exactly: yuan to fen, 5-decimal fees to thousandths of a fen, Beijing times", () => {
    const bill = parseWechatTradeBill(`\uFEFF${tradeBill("`2,`12.34,`2.34,`0.00,`0.06000,`12.34,`2.34")}`);
    assert.deepEqual(bill.entries, [
      {
        kind: "payment",
        orderId: "ORDER20240101",
        gatewayTradeNo: "4200000000202401010000000001",
        amountFen: 1234n,
        feeMilliFen: 7404n,
        at: new Date("2024-01-01T04:00:00Z"),
      },
      {
        kind: "refund",
        orderId: "ORDER20240101",
        refundId: "ORDER20240101R1",
        gatewayRefundNo: "50000000382019052709732678859",
        amountFen: 234n,
        feeMilliFen: -1404n,
        at: new Date("2024-01-01T12:30:00Z"),
      },
    ]);
    assert.deepEqual(bill.summary, { paymentCount: 1, paymentFen: 1234n, refundCount: 1, refundFen: 234n, feeMilliFen: 6000n });
  });

  it("refuses a bill whose lines do not add up to its summary, naming what differs", () => {
    assert.throws(
      () => parseWechatTradeBill(tradeBill("`2,`12.35,`2.34,`0.00,`0.06000,`12.35,`2.34")),
      (error) => error instanceof GatewayError && /does not add up to its summary: 应结订单总金额 \(fen\) says 1235, lines sum to 1234/.test(error.message),
    );
    assert.throws(() => parseWechatTradeBill(tradeBill("`3,`12.34,`2.34,`0.00,`0.06000,`12.34,`2.34")), /总交易单数 says 3, lines sum to 2/);
    assert.throws(() => parseWechatTradeBill(tradeBill("`2,`12.34,`2.34,`0.00,`0.06001,`12.34,`2.34")), /手续费总金额/);
  });

  it("refuses a bill cut short (no summary rows), a field without its backquote, and an amount that is not exactly two decimals", () => {
    assert.throws(() => parseWechatTradeBill(`${[HEADER, PAYMENT].join("\r\n")}\r\n`), /lacks its summary rows/);
    assert.throws(() => parseWechatTradeBill(tradeBill("`1,`12.34,`0.00,`0.00,`0.07404,`12.34,`0.00", [PAYMENT.replace("`12.34,`0.00,`0,", "12.34,`0.00,`0,")])), /does not start with a backquote/);
    assert.throws(() => parseWechatTradeBill(tradeBill("`1,`12.3,`0.00,`0.00,`0.07404,`12.3,`0.00", [PAYMENT.replaceAll("`12.34", "`12.3")])), /is not an amount with 2 decimals/);
  });

  it("turns amounts into fen by string arithmetic: no float rounding, even beyond 2^53", () => {
    assert.equal(parseYuan("0.07", "x"), 7n);
    assert.equal(parseYuan("-0.01", "x"), -1n);
    assert.equal(parseYuan("90071992547409.93", "x"), 9_007_199_254_740_993n);
    assert.equal(parseFeeYuan("0.00006", "x"), 6n);
    assert.equal(parseFeeYuan("1.10000", "x"), 110_000n);
    assert.throws(() => parseYuan("1e3", "x"), /not an amount/);
  });
});

describe("WeChat fund-flow bill parsing", () => {
  const header = "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号";
  const income = "`2024-01-01 12:00:00,`4200000000202401010000000001,`1900000109202401010000000001,`交易,`交易,`收入,`12.34,`12.34,`system,`,`ORDER20240101";
  const expense = "`2024-01-01 20:30:00,`50000000382019052709732678859,`1900000109202401010000000002,`退款,`退款,`支出,`2.34,`10.00,`system,`,`ORDER20240101R1";
  const bill = (summary: string) => `${[header, income, expense, "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额", summary].join("\r\n")}\r\n`;

  it("reads the income and expense totals from its summary, checked against its lines (either kind of parentheses)", () => {
    assert.deepEqual(parseWechatFundFlowBill(bill("`2,`1,`12.34,`1,`2.34")), { incomeCount: 1, incomeFen: 1234n, expenseCount: 1, expenseFen: 234n });
    assert.throws(() => parseWechatFundFlowBill(bill("`2,`1,`12.34,`1,`2.35")), /支出金额 \(fen\) says 235, lines sum to 234/);
  });
});
