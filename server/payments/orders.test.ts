/**
 * Crediting paid orders, one trade or a batch of them in one transaction: each decided as creditPaidOrder decides it,
 * exactly once per order, every credit a ledger entry.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { it } from "node:test";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger, getBalance } from "../ledger/ledger";
import type { Queryable } from "../platform/db/database";
import type { Provider } from "./gateway";
import { type PaidTrade, creditPaidOrder, creditPaidOrders, newOrderId } from "./orders";

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;

async function pendingOrder(db: Queryable, provider: Provider, amountFen: bigint, account = newAccount()) {
  const id = newOrderId();
  await db.query("INSERT INTO orders (id, account, provider, amount_fen, status, flow, expires_at) VALUES ($1, $2, $3, $4, 'pending', 'qr', now() + interval '15 minutes')", [
    id,
    account,
    provider,
    amountFen,
  ]);
  return { id, account, provider, amountFen };
}

const trade = (order: { id: string; provider: Provider; amountFen: bigint }, overrides: Partial<PaidTrade> = {}): PaidTrade => ({
  orderId: order.id,
  provider: order.provider,
  amountFen: order.amountFen,
  gatewayTradeNo: `T${randomBytes(6).toString("hex")}`,
  ...overrides,
});

async function topUps(db: Queryable, orderId: string): Promise<bigint[]> {
  const { rows } = await db.query<{ available_delta_fen: bigint }>("SELECT available_delta_fen FROM ledger_entries WHERE kind = 'topup' AND reference = $1", [orderId]);
  return rows.map((r) => r.available_delta_fen);
}

describeWithDatabases("crediting paid orders", (db) => {
  it("a batch decides each trade on its own, in order: credited, a second trade for the same order already_credited, another amount, another provider, an unknown order", async () => {
    const shared = newAccount();
    const a = await pendingOrder(db(), "alipay", 1_000n, shared);
    const b = await pendingOrder(db(), "wechat", 2_500n, shared);
    const mismatched = await pendingOrder(db(), "alipay", 700n);
    const otherProvider = await pendingOrder(db(), "wechat", 300n);
    const paidAt = new Date("2026-01-02T03:04:05Z");
    const payingA = trade(a, { paidAt });
    const results = await db().transaction((tx) =>
      creditPaidOrders(tx, [
        payingA,
        trade(mismatched, { amountFen: 701n }),
        trade(a),
        trade(b),
        trade(otherProvider, { provider: "alipay" }),
        trade({ id: newOrderId(), provider: "alipay", amountFen: 100n }),
      ]),
    );
    assert.deepEqual(
      results.map((r) => r.outcome),
      ["credited", "amount_mismatch", "already_credited", "credited", "unknown_order", "unknown_order"],
    );
    assert.equal(results[0]!.order?.status, "paid");
    assert.equal(results[2]!.order?.status, "paid", "the duplicate sees the order the batch paid");
    assert.equal(results[1]!.order?.amountFen, 700n, "a mismatch names the order's amount");
    const { rows: paid } = await db().query("SELECT status, paid_at, gateway_trade_no FROM orders WHERE id = $1", [a.id]);
    assert.deepEqual(paid[0], { status: "paid", paid_at: paidAt, gateway_trade_no: payingA.gatewayTradeNo }, "paid at the gateway's time, with its trade number (the first trade's)");

    assert.deepEqual(await topUps(db(), a.id), [1_000n]);
    assert.deepEqual(await topUps(db(), b.id), [2_500n]);
    assert.deepEqual(await topUps(db(), mismatched.id), []);
    assert.deepEqual(await topUps(db(), otherProvider.id), []);
    assert.equal((await getBalance(db(), shared)).availableFen, 3_500n, "two orders of one account credit it twice in one batch");
    assert.equal((await getBalance(db(), mismatched.account)).availableFen, 0n);
    const { rows } = await db().query<{ id: string; status: string }>("SELECT id, status FROM orders WHERE id = ANY($1::text[])", [[mismatched.id, otherProvider.id]]);
    assert.deepEqual(rows.map((r) => r.status), ["pending", "pending"]);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("an order paid by an earlier batch is already_credited in a later one, and its account is not credited again", async () => {
    const order = await pendingOrder(db(), "alipay", 4_200n);
    const first = await db().transaction((tx) => creditPaidOrder(tx, trade(order)));
    const again = await db().transaction((tx) => creditPaidOrders(tx, [trade(order), trade(order)]));
    assert.equal(first.outcome, "credited");
    assert.deepEqual(again.map((r) => r.outcome), ["already_credited", "already_credited"]);
    assert.deepEqual(await topUps(db(), order.id), [4_200n]);
    assert.equal((await getBalance(db(), order.account)).availableFen, 4_200n);
  });

  it("batches racing for the same orders credit each exactly once", async () => {
    const orders = await Promise.all(Array.from({ length: 30 }, (_, i) => pendingOrder(db(), i % 2 ? "alipay" : "wechat", BigInt(100 + i))));
    const shuffled = () => [...orders].sort(() => Math.random() - 0.5).map((o) => trade(o));
    const batches = await Promise.all(Array.from({ length: 6 }, () => db().transaction((tx) => creditPaidOrders(tx, shuffled()))));
    const credited = batches.flat().filter((r) => r.outcome === "credited");
    assert.equal(credited.length, orders.length);
    assert.deepEqual(new Set(credited.map((r) => r.order!.id)), new Set(orders.map((o) => o.id)));
    for (const order of orders) assert.deepEqual(await topUps(db(), order.id), [order.amountFen]);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });
});
