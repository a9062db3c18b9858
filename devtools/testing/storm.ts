/** Test support for storms of orders and notifications against a server process. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { checkLedger } from "../../server/ledger/ledger";
import type { Provider } from "../../server/payments/gateway";
import type { ProcessStack } from "./serverProcess";

export async function inBatches<T, R>(items: T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

export type PlacedOrder = { id: string; account: string; amountFen: number; provider: Provider };

/** `count` orders through the API, alternating providers, each for a fresh account. */
export async function placeOrders(url: string, count: number): Promise<PlacedOrder[]> {
  const specs = Array.from({ length: count }, (_, i) => ({
    account: `0x${randomBytes(20).toString("hex")}`,
    amountFen: 100 + Math.floor(Math.random() * 10_000),
    provider: (i % 2 === 0 ? "alipay" : "wechat") as Provider,
  }));
  return inBatches(specs, 16, async (spec) => {
    const res = await fetch(`${url}/v1/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(spec) });
    const body = (await res.json()) as { id: string };
    assert.equal(res.status, 201, JSON.stringify(body));
    return { ...spec, id: body.id };
  });
}

/** Every order credited exactly once with its amount, and the cached balances equal the ledger. */
export async function assertCreditedExactlyOnce(stack: ProcessStack, orders: PlacedOrder[]): Promise<void> {
  await stack.withDatabase(async (db) => {
    const { rows: entries } = await db.query<{ reference: string; account: string; available_delta_fen: bigint }>(
      "SELECT reference, account, available_delta_fen FROM ledger_entries WHERE kind = 'topup'",
    );
    assert.equal(entries.length, orders.length, "one top-up entry per order");
    const credited = new Map(entries.map((e) => [e.reference, e]));
    for (const order of orders) {
      const entry = credited.get(order.id);
      assert.ok(entry, `order ${order.id} credited`);
      assert.equal(entry.account, order.account);
      assert.equal(entry.available_delta_fen, BigInt(order.amountFen));
    }
    const { rows } = await db.query<{ total: bigint; paid: bigint }>(
      "SELECT (SELECT sum(available_fen) FROM accounts)::bigint AS total, (SELECT count(*) FROM orders WHERE status = 'paid')::bigint AS paid",
    );
    assert.equal(rows[0]!.total, BigInt(orders.reduce((sum, o) => sum + o.amountFen, 0)));
    assert.equal(rows[0]!.paid, BigInt(orders.length));
    assert.deepEqual((await checkLedger(db)).mismatches, [], "ledger:check is clean");
  });
}

/** Whether the server says the order is paid. */
export async function isPaid(url: string, orderId: string): Promise<boolean> {
  const res = await fetch(`${url}/v1/orders/${orderId}`).catch(() => undefined);
  return res?.ok === true && ((await res.json()) as { status: string }).status === "paid";
}

