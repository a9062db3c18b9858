/**
 * Crash safety: the server is killed with SIGKILL while it processes a storm of notifications, then restarted.
 * The gateways' retries deliver what was in flight; nothing is credited twice and nothing is lost.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { testedDatabaseKinds } from "../../devtools/testing/databases";
import { eventually } from "../../devtools/testing/paymentsStack";
import { type ProcessStack, startProcessStack } from "../../devtools/testing/serverProcess";
import { assertCreditedExactlyOnce, inBatches, isPaid, placeOrders } from "../../devtools/testing/storm";

const ORDERS = 400;

for (const kind of testedDatabaseKinds()) {
  describe(`a server killed mid-storm [${kind}]`, () => {
    let stack: ProcessStack;
    before(async () => {
      // retries 1,000× faster than the gateways': WeChat's first ones come after 15 ms, Alipay's after 240 ms
      stack = await startProcessStack(kind, { timeScale: 0.001 });
    });
    after(async () => {
      await stack?.close();
    });

    it("SIGKILL during a storm of notifications, then a restart: no credit lost or doubled", async () => {
      const orders = await placeOrders(stack.server.url, ORDERS);
      for (const provider of ["alipay", "wechat"] as const) stack.simulator[provider].notifier.setFaults({ duplicate: 2 });
      const paying = (async () => {
        for (const order of orders) await stack.simulator[order.provider].pay(order.id);
      })();

      // kill it as soon as some, but not all, notifications have been acknowledged
      const acknowledged = () => [...stack.simulator.alipay.notifier.deliveries(), ...stack.simulator.wechat.notifier.deliveries()].filter((d) => d.acknowledged).length;
      await eventually(async () => acknowledged() >= 20, 30_000, "first acknowledgements");
      await stack.server.stop("SIGKILL");
      const acknowledgedAtKill = acknowledged();
      assert.ok(acknowledgedAtKill < ORDERS, `the kill interrupted the storm (${acknowledgedAtKill} of ${ORDERS} acknowledged)`);

      await paying;
      await stack.restart();
      await eventually(async () => (await inBatches(orders, 16, (o) => isPaid(stack.server.url, o.id))).every(Boolean), 120_000, "every order to be paid after the restart");
      await Promise.all([stack.simulator.alipay.notifier.idle(), stack.simulator.wechat.notifier.idle()]);
      await stack.server.stop("SIGTERM");

      await assertCreditedExactlyOnce(stack, orders);
    });
  });
}
