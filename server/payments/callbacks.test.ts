/**
 * Payment callbacks under load and under a database outage, end to end: the real service over HTTP, the real
 * gateway adapters verifying notifications signed with the simulator's keys (as the simulator signs them), and a
 * real database. First deliveries arriving together are credited together (group commit: one transaction for the
 * callbacks that queued while the previous one ran), each exactly once; a database outage is answered with the
 * gateway's failure reply, so the gateway retries.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { signNotification } from "../../devtools/simulator/alipay";
import { TRANSACTION_SUCCESS, buildWechatNotification, signWechatMessage, wechatPlatformSigner } from "../../devtools/simulator/wechat";
import { createTestDatabase, testedDatabaseKinds } from "../../devtools/testing/databases";
import { type FaultMode, type FaultProxy, startFaultProxy } from "../../devtools/testing/faultProxy";
import { type Stack, eventually, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { skipWithoutPostgres } from "../../devtools/testing/services";
import { checkLedger, getBalance } from "../ledger/ledger";
import { type Database, connectPostgres } from "../platform/db/database";
import { createCallbackHandler } from "./callbacks";
import type { Provider } from "./gateway";
import { formatBeijingTime, formatYuan } from "./gateways/alipay";

type PlacedOrder = { id: string; account: string; provider: Provider; amountFen: number };
type Delivery = { order: PlacedOrder; headers: Record<string, string>; body: string };
type Answer = { status: number; text: string };

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;

async function placeOrder(stack: Stack, provider: Provider, amountFen: number): Promise<PlacedOrder> {
  const account = newAccount();
  const res = await stack.request("POST", "/v1/orders", { account, amountFen, provider });
  assert.equal(res.status, 201, res.text);
  return { id: res.body.id, account, provider, amountFen };
}

/** The notification the gateway sends for a paid order (of `amountFen`, the order's unless given), signed as the simulator signs it. */
function notification(stack: Stack, order: PlacedOrder, amountFen = order.amountFen): Delivery {
  const now = new Date();
  if (order.provider === "alipay") {
    const { appId, sellerId, alipayPrivateKey } = stack.simulator.sandbox.alipay;
    const yuan = formatYuan(BigInt(amountFen));
    const fields = {
      notify_time: formatBeijingTime(now),
      notify_type: "trade_status_sync",
      notify_id: randomBytes(16).toString("hex"),
      app_id: appId,
      seller_id: sellerId,
      charset: "utf-8",
      version: "1.0",
      trade_no: `2026${randomBytes(8).toString("hex")}`,
      out_trade_no: order.id,
      total_amount: yuan,
      receipt_amount: yuan,
      buyer_pay_amount: yuan,
      trade_status: "TRADE_SUCCESS",
      gmt_payment: formatBeijingTime(now),
    };
    return { order, headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(signNotification(fields, alipayPrivateKey)).toString() };
  }
  const sandbox = stack.simulator.sandbox.wechat;
  const body = buildWechatNotification(sandbox.apiV3Key, TRANSACTION_SUCCESS, {
    appid: sandbox.appId,
    mchid: sandbox.mchId,
    out_trade_no: order.id,
    transaction_id: `4200${randomBytes(10).toString("hex")}`,
    trade_type: "NATIVE",
    trade_state: "SUCCESS",
    trade_state_desc: "支付成功",
    bank_type: "OTHERS",
    success_time: now.toISOString(),
    payer: { openid: "o-test" },
    amount: { total: amountFen, payer_total: amountFen, currency: "CNY", payer_currency: "CNY" },
  });
  return { order, headers: { "content-type": "application/json", ...signWechatMessage(body, wechatPlatformSigner(sandbox)) }, body };
}

async function deliver(stack: Stack, delivery: Delivery): Promise<Answer> {
  const res = await stack.request("POST", `/v1/payments/${delivery.order.provider}/notify`, delivery.body, delivery.headers);
  return { status: res.status, text: res.text };
}

/** Alipay: 200 `success`; WeChat Pay: 204. */
function isSuccessReply(provider: Provider, answer: Answer): boolean {
  return provider === "alipay" ? answer.status === 200 && answer.text === "success" : answer.status === 204;
}

/** Alipay: `fail` (HTTP 200, or 503 when we cannot process it now); WeChat Pay: a 4xx/5xx with code FAIL. */
function isFailureReply(provider: Provider, answer: Answer): boolean {
  return provider === "alipay" ? answer.text === "fail" : answer.status >= 400 && (JSON.parse(answer.text) as { code: string }).code === "FAIL";
}

const shuffled = <T>(items: T[]): T[] => [...items].sort(() => Math.random() - 0.5);

async function assertCreditedOnce(db: Database, order: PlacedOrder): Promise<void> {
  const { rows } = await db.query<{ status: string; entries: bigint }>(
    "SELECT status, (SELECT count(*) FROM ledger_entries WHERE kind = 'topup' AND reference = $1)::bigint AS entries FROM orders WHERE id = $1",
    [order.id],
  );
  assert.deepEqual(rows[0], { status: "paid", entries: 1n }, `order ${order.id} paid, with one top-up entry`);
  assert.equal((await getBalance(db, order.account)).availableFen, BigInt(order.amountFen), `order ${order.id}'s account credited its amount`);
}

async function outcomesOf(db: Database, orderIds: string[]): Promise<Map<string, string[]>> {
  const { rows } = await db.query<{ order_id: string; outcome: string }>("SELECT order_id, outcome FROM payment_callbacks WHERE order_id = ANY($1::text[]) ORDER BY id", [orderIds]);
  const byOrder = new Map<string, string[]>();
  for (const r of rows) byOrder.set(r.order_id, [...(byOrder.get(r.order_id) ?? []), r.outcome]);
  return byOrder;
}

const lowerCased = (headers: Record<string, string>) => Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));

/** received_at is the storing transaction's start (now()): rows sharing one were written by one transaction. */
async function assertGroupCommitted(db: Database, orders: PlacedOrder[], callbacks: number): Promise<void> {
  const { rows: transactions } = await db.query<{ credited: bigint; refused: bigint }>(
    `SELECT count(*) FILTER (WHERE outcome = 'credited')::bigint AS credited,
            count(*) FILTER (WHERE outcome IN ('amount_mismatch', 'unknown_order'))::bigint AS refused
       FROM payment_callbacks WHERE order_id = ANY($1::text[]) GROUP BY received_at`,
    [orders.map((o) => o.id)],
  );
  assert.ok(transactions.length <= callbacks / 2, `${callbacks} callbacks stored by ${transactions.length} transactions: they were group-committed`);
  assert.ok(
    transactions.some((t) => t.credited > 0n && t.refused > 0n),
    "a refused notification shared its transaction with credited ones, which were credited all the same",
  );
}

for (const kind of testedDatabaseKinds()) {
  describe(`payment callbacks, group-committed [${kind}]`, () => {
    let stack: Stack;
    before(async () => {
      stack = await startPaymentsStack(kind);
    });
    after(async () => {
      await stack?.close();
    });

    it("concurrent first deliveries and duplicates credit each order once, in shared transactions; a wrong amount or an unknown order in the same batch fails only itself", async () => {
      const providers: Provider[] = ["alipay", "wechat"];
      const good = await Promise.all(providers.flatMap((p) => Array.from({ length: 20 }, (_, i) => placeOrder(stack, p, 100 + 37 * i))));
      const mismatched = await Promise.all(providers.flatMap((p) => Array.from({ length: 3 }, () => placeOrder(stack, p, 1_000))));
      const unknown = providers.flatMap((p) => Array.from({ length: 2 }, (): PlacedOrder => ({ id: `fp${randomBytes(12).toString("hex")}`, account: newAccount(), provider: p, amountFen: 500 })));

      const deliveries = shuffled([
        // the same notification three times over (gateways resend, and retry whatever timed out), and another copy of it
        ...good.flatMap((o) => {
          const first = notification(stack, o);
          return [first, first, notification(stack, o)];
        }),
        ...mismatched.map((o) => notification(stack, o, o.amountFen + 1)),
        ...unknown.map((o) => notification(stack, o)),
      ]);
      const answers = await Promise.all(deliveries.map((d) => deliver(stack, d)));

      deliveries.forEach((d, i) => {
        const answer = answers[i]!;
        const expected = good.includes(d.order) ? "success" : "failure";
        const ok = expected === "success" ? isSuccessReply(d.order.provider, answer) : isFailureReply(d.order.provider, answer);
        assert.ok(ok, `${d.order.provider} ${d.order.id}: expected the ${expected} reply, got HTTP ${answer.status} ${answer.text}`);
      });
      for (const order of good) await assertCreditedOnce(stack.db, order);
      for (const order of mismatched) {
        assert.equal((await stack.request("GET", `/v1/orders/${order.id}`)).body.status, "pending");
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 0n);
      }

      const outcomes = await outcomesOf(stack.db, [...good, ...mismatched, ...unknown].map((o) => o.id));
      for (const order of good) assert.deepEqual([...outcomes.get(order.id)!].sort(), ["already_credited", "already_credited", "credited"], order.id);
      for (const order of mismatched) assert.deepEqual(outcomes.get(order.id), ["amount_mismatch"]);
      for (const order of unknown) assert.deepEqual(outcomes.get(order.id), ["unknown_order"]);

      // PGlite runs in this thread: a transaction there ends before the next request is read, so nothing queues for it
      // (batches of one); the test below makes batches on both databases
      if (kind === "postgres") await assertGroupCommitted(stack.db, [...good, ...mismatched, ...unknown], deliveries.length);
      assert.deepEqual((await checkLedger(stack.db)).mismatches, []);
    });

    it("callbacks handled at once share one transaction: a wrong amount and an unknown order in it fail only themselves", async () => {
      const handler = createCallbackHandler(stack.db);
      const good = await Promise.all(Array.from({ length: 12 }, (_, i) => placeOrder(stack, i % 2 ? "alipay" : "wechat", 150 + i)));
      const mismatched = await placeOrder(stack, "alipay", 990);
      const unknown: PlacedOrder = { id: `fp${randomBytes(12).toString("hex")}`, account: newAccount(), provider: "wechat", amountFen: 500 };
      const deliveries = shuffled([...good.flatMap((o) => [notification(stack, o), notification(stack, o)]), notification(stack, mismatched, 991), notification(stack, unknown)]);

      const results = await Promise.all(
        deliveries.map((d) => handler.handle(stack.service.gateways.get(d.order.provider)!, { headers: lowerCased(d.headers), rawBody: d.body })),
      );
      deliveries.forEach((d, i) => {
        const expected = d.order === mismatched ? "amount_mismatch" : d.order === unknown ? "unknown_order" : ["credited", "already_credited"];
        assert.ok([expected].flat().includes(results[i]!.outcome), `${d.order.id}: ${results[i]!.outcome}, expected ${expected}`);
        assert.ok((d.order === mismatched || d.order === unknown ? isFailureReply : isSuccessReply)(d.order.provider, { status: results[i]!.reply.status, text: results[i]!.reply.body }));
      });
      assert.equal(results.filter((r) => r.outcome === "credited").length, good.length);
      for (const order of good) await assertCreditedOnce(stack.db, order);
      assert.equal((await getBalance(stack.db, mismatched.account)).availableFen, 0n);
      const { batches, items } = handler.stats();
      assert.equal(items, deliveries.length);
      assert.ok(batches <= 3, `${items} callbacks in ${batches} transactions`);
      await assertGroupCommitted(stack.db, [...good, mismatched, unknown], deliveries.length);
    });

    it("a lone notification is credited at once, in a transaction of its own", async () => {
      const order = await placeOrder(stack, "wechat", 4_321);
      const started = Date.now();
      assert.ok(isSuccessReply("wechat", await deliver(stack, notification(stack, order))));
      assert.ok(Date.now() - started < 2_000, "no waiting for company");
      await assertCreditedOnce(stack.db, order);
    });
  });
}

describe("payment callbacks while PostgreSQL is down", { skip: skipWithoutPostgres }, () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: FaultProxy;
  let db: Database;
  let stack: Stack;
  before(async () => {
    database = await createTestDatabase("postgres");
    const url = new URL(database.url!);
    proxy = await startFaultProxy({ port: Number(url.port || 5432) });
    url.port = String(proxy.port);
    db = connectPostgres({ connectionString: url.toString(), max: 8, connectTimeoutMs: 1_000, statementTimeoutMs: 1_000 });
    stack = await startPaymentsStack("postgres", { db });
  });
  after(async () => {
    await stack?.close();
    await db?.close();
    await proxy?.close();
    await database?.drop();
  });

  for (const mode of ["refuse", "blackhole"] as FaultMode[]) {
    it(`${mode === "refuse" ? "connections refused or dropped" : "a server that stops answering"}: every callback is answered with the gateway's failure reply, never success; redelivered once it is back, each order is credited exactly once`, async () => {
      const orders = await Promise.all((["alipay", "wechat"] as Provider[]).flatMap((p) => Array.from({ length: 6 }, (_, i) => placeOrder(stack, p, 200 + i))));
      const deliveries = orders.flatMap((o) => {
        const first = notification(stack, o);
        return [first, first];
      });

      await proxy.setMode(mode);
      let during: Answer[];
      try {
        during = await Promise.all(shuffled(deliveries).map(async (d) => ({ d, answer: await deliver(stack, d) }))).then((r) =>
          r.map(({ d, answer }) => {
            assert.ok(!isSuccessReply(d.order.provider, answer), `${d.order.provider} ${d.order.id} acknowledged while the database is down: HTTP ${answer.status} ${answer.text}`);
            assert.ok(isFailureReply(d.order.provider, answer), `${d.order.provider}: the failure reply, got HTTP ${answer.status} ${answer.text}`);
            return answer;
          }),
        );
      } finally {
        await proxy.setMode("forward");
      }
      assert.ok(during.every((a) => a.status === 503), `503 while the database is unavailable: ${during.map((a) => a.status).join(", ")}`);

      // the pool reconnects by itself; the gateway's retries then find the database back
      await eventually(async () => (await stack.request("GET", "/readyz")).status === 200, 15_000, "the database to be reachable again");
      const redelivered = await Promise.all(shuffled(deliveries).map(async (d) => ({ d, answer: await deliver(stack, d) })));
      for (const { d, answer } of redelivered) assert.ok(isSuccessReply(d.order.provider, answer), `${d.order.provider} ${d.order.id} after recovery: HTTP ${answer.status} ${answer.text}`);
      for (const order of orders) await assertCreditedOnce(db, order);
      const outcomes = await outcomesOf(db, orders.map((o) => o.id));
      // a delivery answered 503 at CALLBACK_ANSWER_WITHIN_MS while its statements waited on the dead server may
      // still commit its credit once the server is back: then both redeliveries find it credited
      for (const order of orders) {
        const stored = [...outcomes.get(order.id)!].sort();
        assert.equal(stored.filter((o) => o === "credited").length, 1, `${order.id}: credited once (${stored.join(", ")})`);
        assert.ok(stored.length >= 2 && stored.length <= 4 && stored.every((o) => o === "credited" || o === "already_credited"), `${order.id}: ${stored.join(", ")}`);
      }
      assert.deepEqual((await checkLedger(db)).mismatches, []);
    });
  }
});

describe("a callback whose credit is held up answers within the gateway's budget", { skip: skipWithoutPostgres }, () => {
  const ANSWER_WITHIN_MS = 600;
  let stack: Stack;
  before(async () => {
    stack = await startPaymentsStack("postgres", { callbackAnswerWithinMs: ANSWER_WITHIN_MS });
  });
  after(async () => {
    await stack?.close();
  });

  it("answers the failure reply (503) by CALLBACK_ANSWER_WITHIN_MS while the order's row is locked by another transaction; the credit commits once the lock goes, and the redelivery is acknowledged as already credited", async () => {
    for (const provider of ["alipay", "wechat"] as Provider[]) {
      const order = await placeOrder(stack, provider, 321);
      // a real lock on the order's row, held by another session (an operator's query, a long refund transaction)
      const locker = await stack.db.transaction(async (tx) => {
        await tx.query("SELECT id FROM orders WHERE id = $1 FOR UPDATE", [order.id]);
        const started = Date.now();
        const answer = await deliver(stack, notification(stack, order));
        const took = Date.now() - started;
        assert.equal(answer.status, 503, `${provider}: HTTP ${answer.status} ${answer.text}`);
        assert.ok(isFailureReply(provider, answer), `${provider}: the failure reply, got ${answer.text}`);
        assert.ok(took >= ANSWER_WITHIN_MS - 50 && took < ANSWER_WITHIN_MS + 500, `${provider}: answered after ${took} ms, not when the lock went`);
        // the credit waits on the lock meanwhile: nothing credited yet
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 0n);
        return took;
      });
      assert.ok(locker > 0);
      // the lock is gone: the work that went on behind the 503 commits the credit
      await eventually(async () => (await getBalance(stack.db, order.account)).availableFen === 321n, 5_000, `${provider}: the held-up credit to commit`);
      const again = await deliver(stack, notification(stack, order));
      assert.ok(isSuccessReply(provider, again), `${provider}: the redelivery is acknowledged: HTTP ${again.status} ${again.text}`);
      await assertCreditedOnce(stack.db, order);
      assert.deepEqual([...(await outcomesOf(stack.db, [order.id])).get(order.id)!].sort(), ["already_credited", "credited"]);
    }
    assert.deepEqual((await checkLedger(stack.db)).mismatches, []);
  });
});
