/**
 * The checkout page in a real browser (Debian's Chromium through playwright-core) against the real service and
 * the gateway simulator: pick an amount and a provider, get the QR code, pay on the simulator's payer page, and
 * watch the page turn to "credited" with the new balance.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext } from "playwright-core";
import { getBalance } from "../server/ledger/ledger";
import { reconcileOnce } from "../server/payments/reconcile";
import { type Stack, startPaymentsStack } from "../devtools/testing/paymentsStack";
import { accessibilityProblems, contrastRatio, launchBrowser, screenshot, watchErrors } from "./browser";
import { skipWithoutChromium } from "../devtools/testing/services";

const ACCOUNT = "0x7e57000000000000000000000000000000c0ffee";

describe("checkout page in a browser", { skip: skipWithoutChromium }, () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;

  before(async () => {
    assert.ok(existsSync(path.join(__dirname, "dist", "checkout.html")), "web/dist is missing: run `npm run build:web` (npm test does)");
    stack = await startPaymentsStack("pglite");
    browser = await launchBrowser();
    context = await browser.newContext({ locale: "en-US" });
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await stack?.close();
  });

  it("tops up ¥50 with WeChat Pay: QR code, payer page, then credited with the new balance — no console errors", async () => {
    const page = await context.newPage();
    const errors = watchErrors(page);
    await page.goto(`${stack.url}/checkout?account=${ACCOUNT}&lang=en`);
    assert.equal(await page.getByLabel("Smart account address").inputValue(), ACCOUNT);
    await page.getByRole("button", { name: "¥50", exact: true }).click();
    await page.getByRole("radio", { name: "WeChat Pay" }).click();
    await screenshot(page, "checkout-1-form");
    await page.getByRole("button", { name: "Pay", exact: true }).click();

    await page.getByRole("heading", { name: "Scan with WeChat Pay to pay ¥50.00" }).waitFor();
    assert.ok(await page.locator("canvas#qr").isVisible(), "the QR code is drawn");
    const payerUrl = await page.getByRole("link", { name: "Open the payment page on this device" }).getAttribute("href");
    assert.ok(payerUrl?.startsWith(`${stack.simulator.url}/payer/wechat/`), String(payerUrl));
    await page.getByRole("status").filter({ hasText: "Waiting for payment" }).waitFor();
    await screenshot(page, "checkout-2-qr");

    // the payer scans the code: the simulator's payer page, Pay
    const payer = await context.newPage();
    await payer.goto(payerUrl!);
    await payer.getByRole("button", { name: /pay/i }).first().click();
    await payer.close();

    await page.getByRole("status").filter({ hasText: "Paid: the quota is credited" }).waitFor({ timeout: 15_000 });
    await page.getByText("Available quota: ¥50.00").waitFor();
    await screenshot(page, "checkout-3-credited");
    assert.equal((await getBalance(stack.db, ACCOUNT)).availableFen, 5_000n);
    assert.deepEqual(errors, []);
    assert.deepEqual(await accessibilityProblems(page), []);
  });

  it("refuses a bad address and an amount outside the limits with messages next to the fields, creating nothing", async () => {
    const page = await context.newPage();
    const errors = watchErrors(page);
    await page.goto(`${stack.url}/checkout?lang=en`);
    await page.getByLabel("Smart account address").fill("0x1234");
    await page.getByLabel("Other amount (¥)").fill("0.5");
    await page.getByRole("button", { name: "Pay", exact: true }).click();
    await page.getByText("Enter a valid address (0x and 40 hex characters)").waitFor();
    await page.getByLabel("Smart account address").fill(ACCOUNT);
    await page.getByRole("button", { name: "Pay", exact: true }).click();
    await page.getByText("The amount must be between ¥1.00 and ¥5000.00, at most 2 decimals").waitFor();
    await screenshot(page, "checkout-errors");
    const { rows } = await stack.db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM orders WHERE amount_fen = 50");
    assert.equal(rows[0]!.n, 0n);
    assert.deepEqual(errors, []);
  });

  it("speaks Chinese to a Chinese browser, switches language, and is usable by keyboard alone", async () => {
    const zh = await browser.newContext({ locale: "zh-CN" });
    try {
      const page = await zh.newPage();
      await page.goto(`${stack.url}/checkout?account=${ACCOUNT}`);
      await page.getByRole("heading", { name: "充值燃气额度" }).waitFor();
      await page.getByRole("button", { name: "English" }).click();
      await page.getByRole("heading", { name: "Top up gas quota" }).waitFor();
      // keyboard: from the custom amount field, Tab reaches the providers and then Pay; Enter submits
      await page.getByLabel("Other amount (¥)").fill("12.34");
      await page.getByLabel("Other amount (¥)").press("Enter");
      await page.getByRole("heading", { name: /to pay ¥12\.34/ }).waitFor();
    } finally {
      await zh.close();
    }
  });

  it("an order that expires unpaid turns to 'expired' with a way to start again", async () => {
    const page = await context.newPage();
    const errors = watchErrors(page);
    await page.goto(`${stack.url}/checkout?account=${ACCOUNT}&lang=en`);
    await page.getByRole("button", { name: "¥100", exact: true }).click();
    await page.getByRole("button", { name: "Pay", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "Waiting for payment" }).waitFor();
    // nobody pays; past its expiry the reconciler closes it at the gateway and here
    const later = new Date(Date.now() + 3_600_000);
    const report = await reconcileOnce({ db: stack.db, gateways: stack.service.gateways }, { afterMs: 0, now: () => later });
    assert.ok(report.closed >= 1, JSON.stringify(report));
    await page.getByRole("status").filter({ hasText: "The order expired or was cancelled" }).waitFor({ timeout: 10_000 });
    await screenshot(page, "checkout-expired");
    await page.getByRole("button", { name: "Start again" }).click();
    await page.getByRole("button", { name: "Pay", exact: true }).waitFor();
    assert.deepEqual(errors, []);
  });

  it("fits a phone screen, with readable contrast", async () => {
    const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: "zh-CN" });
    try {
      const page = await phone.newPage();
      await page.goto(`${stack.url}/checkout?account=${ACCOUNT}`);
      await page.getByRole("heading", { name: "充值燃气额度" }).waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      await screenshot(page, "checkout-phone");
      for (const selector of ["h1", ".lead", "label[for=account]", "button.primary"]) {
        const ratio = await contrastRatio(page, selector);
        assert.ok(ratio >= 4.5, `${selector} contrast ${ratio.toFixed(2)} < 4.5`);
      }
    } finally {
      await phone.close();
    }
  });
});
