/**
 * Exactly-once crediting under a storm: 1,000 orders whose notifications each arrive five times, concurrently
 * and in shuffled order, from the gateway simulator (real crypto) to the server running as its own process.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { testedDatabaseKinds } from "../../devtools/testing/databases";
import { eventually } from "../../devtools/testing/paymentsStack";
import { type ProcessStack, startProcessStack } from "../../devtools/testing/serverProcess";
import { assertCreditedExactlyOnce, inBatches, isPaid, placeOrders } from "../../devtools/testing/storm";

const ORDERS = 1_000;
const COPIES = 5;

for (const kind of testedDatabaseKinds()) {
  describe(`a notification storm [${kind}]`, () => {
    let stack: ProcessStack;
    before(async () => {
      stack = await startProcessStack(kind);
    });
    after(async () => {
      await stack?.close();
    });

    it(`${ORDERS} orders notified ${COPIES} times each, concurrently and shuffled, are each credited exactly once`, async () => {
      const orders = await placeOrders(stack.server.url, ORDERS);
      for (const provider of ["alipay", "wechat"] as const) {
        stack.simulator[provider].notifier.setFaults({ duplicate: COPIES - 1, reorderWindowMs: 1_000 });
      }
      for (const order of orders) await stack.simulator[order.provider].pay(order.id);

      await eventually(async () => (await inBatches(orders, 16, (o) => isPaid(stack.server.url, o.id))).every(Boolean), 180_000, "every order to be paid");
      await Promise.all([stack.simulator.alipay.notifier.idle(), stack.simulator.wechat.notifier.idle()]);
      const deliveries = [...stack.simulator.alipay.notifier.deliveries(), ...stack.simulator.wechat.notifier.deliveries()];
      assert.equal(deliveries.filter((d) => d.acknowledged).length, ORDERS, "the server acknowledged every notification");
      await stack.server.stop("SIGTERM");

      await assertCreditedExactlyOnce(stack, orders);
      await stack.withDatabase(async (db) => {
        const { rows } = await db.query<{ outcome: string; n: bigint }>("SELECT outcome, count(*)::bigint AS n FROM payment_callbacks GROUP BY outcome");
        const byOutcome = Object.fromEntries(rows.map((r) => [r.outcome, Number(r.n)]));
        assert.equal(byOutcome.credited, ORDERS);
        assert.deepEqual(Object.keys(byOutcome).sort(), ["already_credited", "credited"], "no callback was rejected");
        assert.ok(byOutcome.already_credited! > 0, "duplicates arrived and were acknowledged");
      });
    });
  });
}
