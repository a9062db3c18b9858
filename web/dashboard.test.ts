/**
 * The operations dashboard's actions in a browser against the real service and gateway simulator: a refund
 * started from an order, an audited manual adjustment from an account's ledger, and a day's reconciliation run
 * from the reconciliation page with its difference shown.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { getBalance } from "../server/ledger/ledger";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../devtools/testing/paymentsStack";
import { accessibilityProblems, launchBrowser, screenshot, watchErrors } from "./browser";
import { skipWithoutChromium } from "../devtools/testing/services";

const ACCOUNT = "0xda5b0a2d00000000000000000000000000000042";

describe("ops dashboard actions in a browser", { skip: skipWithoutChromium }, () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let orderId: string;
  // the simulator's business clock: the reconciliation test plays a past day
  let simNow: Date | undefined;

  before(async () => {
    stack = await startPaymentsStack("pglite", { clock: () => simNow ?? new Date() });
    const order = await stack.request("POST", "/v1/orders", { account: ACCOUNT, amountFen: 2_000, provider: "alipay" });
    orderId = order.body.id;
    await payOnPayerPage("alipay", order.body.qrCode);
    await eventually(async () => (await getBalance(stack.db, ACCOUNT)).availableFen === 2_000n, 10_000, "the top-up credited");
    browser = await launchBrowser();
    page = await (await browser.newContext({ locale: "en-US", viewport: { width: 1100, height: 900 } })).newPage();
    errors = watchErrors(page);
    await page.goto(`${stack.url}/dashboard`);
    await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Last 48 hours" }).waitFor();
  });
  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  it("starts a partial refund from an order: the ledger is debited and the refund completes at the gateway", async () => {
    await page.getByRole("button", { name: "Orders" }).click();
    await page.getByLabel("Provider").selectOption("alipay");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.locator("tr", { hasText: orderId }).click();
    await page.getByRole("heading", { name: `Order ${orderId}` }).waitFor();
    await page.getByRole("cell", { name: "credited" }).waitFor();
    await page.getByLabel("Refund (¥, empty = all unspent)").fill("5.00");
    await page.getByLabel("Reason").fill("customer asked");
    await page.getByRole("button", { name: "Refund", exact: true }).click();
    await page.locator("tr", { hasText: "¥5.00" }).filter({ hasText: /requested|succeeded/ }).waitFor();
    await screenshot(page, "dashboard-refund");
    assert.equal((await getBalance(stack.db, ACCOUNT)).availableFen, 1_500n, "the refund is debited first");
    await eventually(async () => (await stack.db.query<{ status: string }>("SELECT status FROM refunds WHERE order_id = $1", [orderId])).rows[0]?.status === "succeeded", 15_000, "the refund succeeded");
  });

  it("applies a manual adjustment with its reason from the account's ledger, and the audit log shows it", async () => {
    await page.getByRole("button", { name: "Accounts" }).click();
    await page.locator("tr", { hasText: ACCOUNT }).click();
    await page.getByLabel("Adjustment (¥, negative to debit)").fill("2.50");
    await page.getByLabel("Reason (required, audited)").fill("goodwill credit for ticket 42");
    await page.getByRole("button", { name: "Adjust" }).click();
    await page.locator("tr", { hasText: "goodwill credit for ticket 42" }).filter({ hasText: "adjust" }).waitFor();
    assert.equal((await getBalance(stack.db, ACCOUNT)).availableFen, 1_750n);

    // a debit beyond the balance is refused with the server's message, and changes nothing
    await page.getByLabel("Adjustment (¥, negative to debit)").fill("-100");
    await page.getByLabel("Reason (required, audited)").fill("too much");
    await page.getByRole("button", { name: "Adjust" }).click();
    await page.getByRole("alert").filter({ hasText: /available/ }).waitFor();
    assert.equal((await getBalance(stack.db, ACCOUNT)).availableFen, 1_750n);

    await page.getByRole("button", { name: "Audit" }).click();
    await page.locator("tr", { hasText: "goodwill credit for ticket 42" }).waitFor();
    await screenshot(page, "dashboard-audit");
    assert.deepEqual(errors.filter((e) => !/status of 409/.test(e)), [], "only the refused debit's 409");
    assert.deepEqual(await accessibilityProblems(page), []);
  });

  it("reconciles a past day from the reconciliation page: an amount off by one fen in WeChat's bill is shown with its cause", async () => {
    const day = "2026-09-20";
    simNow = new Date(`${day}T11:00:00+08:00`);
    const order = await stack.request("POST", "/v1/orders", { account: ACCOUNT, amountFen: 1_000, provider: "wechat" });
    await payOnPayerPage("wechat", order.body.qrCode);
    await eventually(async () => (await stack.request("GET", `/v1/orders/${order.body.id}`)).body.status === "paid", 10_000, "credited");
    await stack.simulator.wechat.injectBillFault({ kind: "amount_off_by_one_fen", orderId: order.body.id });
    simNow = undefined;

    await page.getByRole("button", { name: "Reconciliation" }).click();
    await page.getByRole("heading", { name: "Daily reconciliation" }).waitFor();
    await page.getByLabel("Reconcile a day").fill(day);
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByRole("heading", { name: `Reconciliation of ${day}` }).waitFor();
    await page.getByRole("alert").filter({ hasText: "1 open difference." }).waitFor();
    const row = page.locator("tr", { hasText: "amount_mismatch" });
    await row.filter({ hasText: order.body.id }).filter({ hasText: "1001 fen" }).waitFor();
    await page.locator("tr", { hasText: "alipay" }).filter({ hasText: "ties_out" }).waitFor();
    await screenshot(page, "dashboard-reconciliation");

    await page.getByRole("button", { name: "← all days" }).click();
    await page.locator("tr", { hasText: day }).filter({ hasText: "DIFFERENCES" }).waitFor();
    assert.deepEqual(errors.filter((e) => !/status of 409/.test(e)), []);
    assert.deepEqual(await accessibilityProblems(page), []);
  });
});
