/**
 * The checkout on phones, in a real browser (Debian's Chromium through playwright-core, phone emulation: user
 * agent, viewport, touch) against the real service and the gateway simulator: Alipay 手机网站支付 in a phone's
 * browser, WeChat Pay H5 in a phone's browser, WeChat Pay JSAPI inside WeChat (OAuth, then WeixinJSBridge — the
 * simulator's stand-in, which only sandbox mode names), each to a credited balance shown on our checkout; and
 * Alipay chosen inside WeChat, which says it cannot open there and offers the link to copy.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { getBalance } from "../server/ledger/ledger";
import { type Stack, startPaymentsStack } from "../devtools/testing/paymentsStack";
import { skipWithoutChromium } from "../devtools/testing/services";
import { launchBrowser, screenshot, watchErrors } from "./browser";

const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
const WECHAT =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN";
const phone = (userAgent: string) => ({ userAgent, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: "en-US" });

let next = 0x7e57_0000;
const newAccount = () => `0x${(next++).toString(16).padStart(40, "0")}`;

describe("checkout on phones in a browser", { skip: skipWithoutChromium }, () => {
  let stack: Stack;
  let browser: Browser;

  before(async () => {
    assert.ok(existsSync(path.join(__dirname, "dist", "checkout.html")), "web/dist is missing: run `npm run build:web` (npm test does)");
    stack = await startPaymentsStack("pglite", { alipayFlows: ["qr", "page", "wap"], wechatFlows: ["qr", "h5", "jsapi"], sandbox: true });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  async function openCheckout(context: BrowserContext, account: string): Promise<{ page: Page; errors: string[] }> {
    const page = await context.newPage();
    const errors = watchErrors(page);
    await page.goto(`${stack.url}/checkout?account=${account}&lang=en`);
    await page.getByRole("button", { name: "¥50", exact: true }).click();
    return { page, errors };
  }

  async function expectCredited(page: Page, account: string): Promise<void> {
    await page.getByRole("status").filter({ hasText: "Paid: the quota is credited" }).waitFor({ timeout: 20_000 });
    await page.getByText("Available quota: ¥50.00").waitFor();
    assert.equal((await getBalance(stack.db, account)).availableFen, 5_000n);
  }

  it("iPhone browser + Alipay: 手机网站支付 cashier, Pay, back to our checkout by return_url, credited by the notification", async () => {
    const context = await browser.newContext(phone(IPHONE));
    try {
      const account = newAccount();
      const { page, errors } = await openCheckout(context, account);
      await page.getByRole("radio", { name: "Alipay" }).tap();
      await page.getByRole("button", { name: "Pay", exact: true }).tap();
      // straight on to Alipay's WAP cashier (the simulator's), phone-sized
      await page.waitForURL(`${stack.simulator.url}/payer/alipay/**`);
      await page.getByText("手机网站支付").waitFor();
      await screenshot(page, "mobile-1-alipay-wap-cashier");
      await page.getByRole("button", { name: "Pay ¥50.00" }).tap();
      // return_url: our checkout, for this order; the page asks the server, which credits on the notification
      await page.waitForURL(new RegExp(`^${stack.url}/checkout\\?`));
      await expectCredited(page, account);
      await screenshot(page, "mobile-2-alipay-wap-credited");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it("Android browser + WeChat Pay: H5 (h5_url with our redirect_url), Pay, back to our checkout, credited by the notification", async () => {
    const context = await browser.newContext(phone(ANDROID));
    try {
      const account = newAccount();
      const { page, errors } = await openCheckout(context, account);
      await page.getByRole("radio", { name: "WeChat Pay" }).tap();
      await page.getByRole("button", { name: "Pay", exact: true }).tap();
      await page.waitForURL(`${stack.simulator.url}/payer/wechat/checkmweb?**`);
      const redirect = new URL(page.url()).searchParams.get("redirect_url");
      assert.match(String(redirect), new RegExp(`^${stack.url}/checkout\\?account=${account}&order=fp[0-9a-f]{24}$`));
      await screenshot(page, "mobile-3-wechat-h5-cashier");
      await page.getByRole("button", { name: "Pay ¥50.00" }).tap();
      await page.waitForURL(new RegExp(`^${stack.url}/checkout\\?`));
      await expectCredited(page, account);
      const orderId = new URL(page.url()).searchParams.get("order")!;
      assert.equal(stack.simulator.wechat.trade(orderId)?.tradeType, "MWEB");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it("Android + WeChat Pay H5: leaving the cashier unpaid comes back to 'confirming'; paying again gets a fresh h5_url and credits", async () => {
    const context = await browser.newContext(phone(ANDROID));
    try {
      const account = newAccount();
      const { page, errors } = await openCheckout(context, account);
      await page.getByRole("radio", { name: "WeChat Pay" }).tap();
      await page.getByRole("button", { name: "Pay", exact: true }).tap();
      await page.waitForURL(`${stack.simulator.url}/payer/wechat/checkmweb?**`);
      const firstPrepay = new URL(page.url()).searchParams.get("prepay_id");
      await page.getByRole("button", { name: "Cancel" }).tap();
      await page.waitForURL(new RegExp(`^${stack.url}/checkout\\?`));
      await page.getByRole("status").filter({ hasText: "Confirming the payment" }).waitFor();
      await page.getByRole("link", { name: "Open the payment page again" }).tap();
      await page.waitForURL(`${stack.simulator.url}/payer/wechat/checkmweb?**`);
      assert.notEqual(new URL(page.url()).searchParams.get("prepay_id"), firstPrepay);
      await page.getByRole("button", { name: "Pay ¥50.00" }).tap();
      await page.waitForURL(new RegExp(`^${stack.url}/checkout\\?`));
      await expectCredited(page, account);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it("inside WeChat + WeChat Pay: JSAPI — OAuth for the openid, WeixinJSBridge's sheet, Pay; its ok waits for the notification's credit", async () => {
    const context = await browser.newContext(phone(WECHAT));
    try {
      const account = newAccount();
      const { page, errors } = await openCheckout(context, account);
      await page.getByRole("radio", { name: "WeChat Pay" }).tap();
      await page.getByRole("button", { name: "Pay", exact: true }).tap();
      // WeChat's authorize page (the simulator's) → our OAuth callback → back to the checkout, with the bridge's sheet
      const sheet = page.getByRole("dialog", { name: "WeChat Pay" });
      await sheet.waitFor({ timeout: 15_000 });
      assert.match(page.url(), new RegExp(`^${stack.url}/checkout\\?account=${account}&order=`));
      await screenshot(page, "mobile-4-wechat-jsapi-sheet");
      const orderId = new URL(page.url()).searchParams.get("order")!;
      assert.equal(stack.simulator.wechat.trade(orderId)?.tradeType, "JSAPI");
      await sheet.getByRole("button", { name: "Pay ¥50.00" }).tap();
      await expectCredited(page, account);
      await screenshot(page, "mobile-5-wechat-jsapi-credited");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it("inside WeChat, cancelling WeChat's sheet says so and the button opens it again", async () => {
    const context = await browser.newContext(phone(WECHAT));
    try {
      const account = newAccount();
      const { page, errors } = await openCheckout(context, account);
      await page.getByRole("radio", { name: "WeChat Pay" }).tap();
      await page.getByRole("button", { name: "Pay", exact: true }).tap();
      const sheet = page.getByRole("dialog", { name: "WeChat Pay" });
      await sheet.getByRole("button", { name: "Cancel" }).tap();
      await page.getByRole("status").filter({ hasText: "Payment cancelled; you can pay again" }).waitFor();
      await page.getByRole("button", { name: "Pay with WeChat" }).tap();
      await sheet.getByRole("button", { name: "Pay ¥50.00" }).tap();
      await expectCredited(page, account);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it("inside WeChat, Alipay says it cannot open there and offers the link to copy; nothing is created", async () => {
    const context = await browser.newContext(phone(WECHAT));
    try {
      const account = newAccount();
      const { page, errors } = await openCheckout(context, account);
      await page.getByRole("radio", { name: "Alipay" }).tap();
      const notice = page.getByRole("note");
      await notice.getByText("Alipay cannot open inside WeChat").waitFor();
      await screenshot(page, "mobile-6-alipay-in-wechat");
      await notice.getByRole("button", { name: "Copy link" }).tap();
      await notice.getByText("Link copied").waitFor();
      await page.getByRole("button", { name: "Pay", exact: true }).tap();
      await page.getByRole("alert").filter({ hasText: "Alipay cannot open inside WeChat" }).waitFor();
      const { rows } = await stack.db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM orders WHERE account = $1", [account]);
      assert.equal(rows[0]!.n, 0n);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it("a desktop browser still gets the QR code (no flow asked: the server's default)", async () => {
    const context = await browser.newContext({ locale: "en-US" });
    try {
      const { page, errors } = await openCheckout(context, newAccount());
      await page.getByRole("radio", { name: "WeChat Pay" }).click();
      await page.getByRole("button", { name: "Pay", exact: true }).click();
      await page.getByRole("heading", { name: "Scan with WeChat Pay to pay ¥50.00" }).waitFor();
      assert.ok(await page.locator("canvas#qr").isVisible());
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
