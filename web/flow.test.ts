/**
 * The whole product in a browser, on the real local stack (`npm start`: anvil, EntryPoint, FiatPaymaster, alto,
 * the gateway simulator, the server on PGlite): the demo DApp shows a new zero-ETH account → its "Top up" link
 * opens checkout → ¥10 with Alipay → the simulator's payer page → credited → back in the DApp a sponsored
 * UserOperation lands through alto and is settled, showing the fen charged → the ops dashboard shows the
 * order with its verified callback, the settled hold and the settlement. Then the same DApp served from other
 * origins, as a real DApp is: on an origin the API key allows it lands a sponsored operation cross-origin (CORS on
 * /rpc, /v1/config, /v1/accounts, /v1/sponsorships); on one it does not, it shows the server's refusal.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext } from "playwright-core";
import { freePort } from "../devtools/chain/anvil";
import { accessibilityProblems, launchBrowser, screenshot, watchErrors } from "./browser";
import { skipWithoutChromium } from "../devtools/testing/services";
import { waitForOutput } from "../devtools/testing/childOutput";

const ROOT = path.resolve(__dirname, "..");
const DIST = path.join(ROOT, "web", "dist");
const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };

/** A static host for the built pages on a port of its own: another origin than the paymaster server's. */
async function staticHost(): Promise<{ origin: string; server: Server }> {
  const server = createServer((req, res) => {
    const file = path.normalize(new URL(req.url ?? "/", "http://x").pathname).replace(/^\/+/, "");
    try {
      const body = readFileSync(path.join(DIST, file === "dapp" ? "dapp.html" : file));
      res.writeHead(200, { "content-type": TYPES[path.extname(file || ".html")] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  }).listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}


describe("the local stack in a browser: DApp → checkout → payer page → sponsored operation, settled", { skip: skipWithoutChromium }, () => {
  let stack: ChildProcess;
  let serverUrl: string;
  let adminToken: string;
  let demoKeyId: string;
  let browser: Browser;
  let context: BrowserContext;

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "fiat-paymaster-flow-"));
    const [anvil, bundler, server, simulator] = [await freePort(), await freePort(), await freePort(), await freePort()];
    serverUrl = `http://127.0.0.1:${server}`;
    stack = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], {
      cwd: ROOT,
      env: {
        ...process.env,
        ANVIL_PORT: String(anvil),
        BUNDLER_PORT: String(bundler),
        PORT: String(server),
        SIMULATOR_PORT: String(simulator),
        DEPLOYMENTS_DIR: dir,
        DATA_DIR: path.join(dir, "pglite"),
        SANDBOX_DIR: path.join(dir, "sandbox"),
        LOCAL_STACK_FILE: path.join(dir, "local-stack.json"),
        DATABASE_URL: "",
        REDIS_URL: "",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const banner = await waitForOutput(stack, /Press Ctrl-C to stop/, 90_000);
    adminToken = /admin token\s+(\S+)/.exec(banner)![1]!;
    demoKeyId = /demo API key\s+fpk_([0-9a-f]{12})_/.exec(banner)![1]!;
    browser = await launchBrowser();
    context = await browser.newContext({ locale: "en-US", viewport: { width: 900, height: 900 } });
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    if (stack && stack.exitCode === null) {
      const exited = new Promise((resolve) => stack.once("exit", resolve));
      stack.kill("SIGINT");
      await exited;
    }
  });

  it("a zero-ETH account tops up ¥10 at checkout and sends a sponsored UserOperation from the demo DApp", async () => {
    const dapp = await context.newPage();
    const errors = watchErrors(dapp);
    await dapp.goto(`${serverUrl}/dapp`);
    const address = (await dapp.locator("#address").filter({ hasText: /^0x[0-9a-fA-F]{40}$/ }).textContent())!;
    await dapp.locator("#eth").filter({ hasText: "0 ETH" }).waitFor();
    await dapp.locator("#quota").filter({ hasText: "¥0.00 available" }).waitFor();
    assert.ok(await dapp.getByRole("button", { name: "Send a sponsored UserOperation" }).isDisabled(), "nothing to spend yet");
    await screenshot(dapp, "dapp-1-new-account");

    // top up through checkout, opened from the DApp's link
    await dapp.getByRole("link", { name: "Top up" }).click();
    await dapp.waitForURL(/\/checkout\?account=/);
    assert.equal((await dapp.getByLabel("Smart account address").inputValue()).toLowerCase(), address.toLowerCase());
    await dapp.getByRole("button", { name: "¥10", exact: true }).click();
    await dapp.getByRole("radio", { name: "Alipay" }).click();
    await dapp.getByRole("button", { name: "Pay", exact: true }).click();
    const payerUrl = (await dapp.getByRole("link", { name: "Open the payment page on this device" }).getAttribute("href"))!;
    const payer = await context.newPage();
    await payer.goto(payerUrl);
    await screenshot(payer, "simulator-payer-page");
    await payer.getByRole("button", { name: /pay/i }).first().click();
    await payer.close();
    await dapp.getByText("Available quota: ¥10.00").waitFor({ timeout: 20_000 });
    await screenshot(dapp, "checkout-credited");

    // back to the DApp: the quota is there, send a sponsored operation
    await dapp.goto(`${serverUrl}/dapp`);
    await dapp.locator("#quota").filter({ hasText: "¥10.00 available" }).waitFor();
    assert.equal(await dapp.locator("#address").textContent(), address, "the key in browser storage restores the same account");
    await dapp.getByRole("button", { name: "Send a sponsored UserOperation" }).click();
    await dapp.getByRole("status").filter({ hasText: "Settled: charged what the chain actually spent." }).waitFor({ timeout: 60_000 });
    const charged = (await dapp.locator("#charged").textContent())!;
    const match = /^¥(\d+\.\d\d)$/.exec(charged);
    assert.ok(match && Number(match[1]) > 0, charged);
    assert.match((await dapp.locator("#tx-hash").textContent())!, /^0x[0-9a-f]{64}$/);
    assert.match((await dapp.locator("#gas-used").textContent())!, /^\d+ gas/);
    await dapp.locator("#quota").filter({ hasText: `¥${(10 - Number(match![1])).toFixed(2)} available, ¥0.00 held` }).waitFor();
    await dapp.locator("#eth").filter({ hasText: "0 ETH" }).waitFor();
    await screenshot(dapp, "dapp-2-settled");
    assert.deepEqual(errors, []);
    assert.deepEqual(await accessibilityProblems(dapp), []);

    // the operator's view of the same story
    const dashboard = await context.newPage();
    const dashboardErrors = watchErrors(dashboard);
    await dashboard.goto(`${serverUrl}/dashboard`);
    await dashboard.getByLabel("Admin token").fill("wrong-token-wrong-token");
    await dashboard.getByRole("button", { name: "Sign in" }).click();
    await dashboard.getByText("The admin token was refused.").waitFor();
    await dashboard.getByLabel("Admin token").fill(adminToken);
    await dashboard.getByRole("button", { name: "Sign in" }).click();
    // a tile per (chain, EntryPoint): the local stack serves v0.7, v0.8 and v0.9, each with its own paymaster and deposit
    for (const version of ["0.7", "0.8", "0.9"]) {
      const tile = dashboard.locator(".tile").filter({ has: dashboard.getByRole("heading", { name: `anvil (31337) · EntryPoint v${version}` }) });
      await tile.getByText(/^Deposit \d+\.\d{6} ETH; open holds 0/).waitFor();
      await tile.getByText(/^Stake 1\.000000 ETH, staked/).waitFor();
    }
    assert.equal(await dashboard.locator(".warn").count(), 0, "no low-deposit warning");
    await screenshot(dashboard, "dashboard-1-overview");
    await dashboard.getByRole("button", { name: "Per day (30 days)" }).click();
    await dashboard.getByRole("heading", { name: "Last 30 days" }).waitFor();
    await dashboard.getByText("total ¥10.00; highest bucket ¥10.00").waitFor();

    await dashboard.getByRole("button", { name: "Orders" }).click();
    const orderRow = dashboard.locator("tr", { hasText: address.slice(0, 10).toLowerCase() });
    await orderRow.filter({ hasText: "paid" }).filter({ hasText: "¥10.00" }).waitFor();
    await orderRow.first().click();
    await dashboard.getByRole("cell", { name: "credited" }).waitFor();
    await screenshot(dashboard, "dashboard-2-order");

    await dashboard.getByRole("button", { name: "Holds" }).click();
    await dashboard.getByLabel("Status").selectOption("settled");
    await dashboard.getByRole("button", { name: "Apply" }).click();
    await dashboard.locator("tr", { hasText: "settled" }).filter({ hasText: charged }).first().waitFor();

    await dashboard.getByRole("button", { name: "Settlements" }).click();
    await dashboard.locator("tr", { hasText: address.slice(0, 10).toLowerCase() }).filter({ hasText: charged }).first().waitFor();
    await screenshot(dashboard, "dashboard-3-settlements");
    assert.deepEqual(dashboardErrors.filter((e) => !/status of 401/.test(e)), [], "only the refused sign-in's 401");
    assert.deepEqual(await accessibilityProblems(dashboard), []);
  });

  it("the DApp on its own origin: allowed, it lands a sponsored operation cross-origin; on an origin the key does not list, it shows the server's refusal", async () => {
    const [allowed, other] = [await staticHost(), await staticHost()];
    const admin = { authorization: `Bearer ${adminToken}`, "content-type": "application/json" };
    try {
      const policy = await fetch(`${serverUrl}/admin/api-keys/${demoKeyId}/policy`, { method: "PUT", headers: admin, body: JSON.stringify({ allowedOrigins: [serverUrl, allowed.origin] }) });
      assert.equal(policy.status, 200, await policy.text());
      // API keys are cached for up to 5 s: wait until the new policy refuses the other origin
      for (let i = 0; ; i++) {
        const probe = await fetch(`${serverUrl}/rpc?apikey=${encodeURIComponent(await demoKey())}`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: other.origin },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: [{}, "0x0000000071727De22E5E9d8BAf0edAc6f37da032", "0x7a69"] }),
        });
        if (((await probe.json()) as { error?: { code: number } }).error?.code === -32135) break;
        assert.ok(i < 40, "the new policy did not take effect within 10 s");
        await new Promise((r) => setTimeout(r, 250));
      }

      const dapp = await context.newPage();
      const errors = watchErrors(dapp);
      await dapp.goto(`${allowed.origin}/dapp.html?server=${encodeURIComponent(serverUrl)}`);
      const address = (await dapp.locator("#address").filter({ hasText: /^0x[0-9a-fA-F]{40}$/ }).textContent())!;
      const credit = await fetch(`${serverUrl}/admin/adjustments`, { method: "POST", headers: admin, body: JSON.stringify({ account: address, amountFen: 1000, reason: "cross-origin test" }) });
      assert.equal(credit.status, 201, await credit.text());
      await dapp.locator("#quota").filter({ hasText: "¥10.00 available" }).waitFor({ timeout: 10_000 });
      assert.equal(await dapp.getByRole("link", { name: "Top up" }).getAttribute("href"), `${serverUrl}/checkout?account=${address}`);
      await dapp.getByRole("button", { name: "Send a sponsored UserOperation" }).click();
      await dapp.getByRole("status").filter({ hasText: "Settled: charged what the chain actually spent." }).waitFor({ timeout: 60_000 });
      assert.match((await dapp.locator("#charged").textContent())!, /^¥\d+\.\d\d$/);
      // REST from the page too: a preflighted POST whose problem answer the page can read
      const rest = await dapp.evaluate(async ([url, key]) => {
        const response = await fetch(`${url}/v1/sponsorships`, { method: "POST", headers: { "content-type": "application/json", "x-api-key": key! }, body: "{}" });
        return { status: response.status, body: (await response.json()) as { type: string } };
      }, [serverUrl, await demoKey()]);
      assert.deepEqual([rest.status, rest.body.type], [400, "invalid_request"]);
      assert.deepEqual(errors.filter((e) => !/status of 400/.test(e)), [], "no CORS or page errors");
      await screenshot(dapp, "dapp-cross-origin");

      const refused = await context.newPage();
      await refused.goto(`${other.origin}/dapp.html?server=${encodeURIComponent(serverUrl)}`);
      const stranger = (await refused.locator("#address").filter({ hasText: /^0x[0-9a-fA-F]{40}$/ }).textContent())!;
      await fetch(`${serverUrl}/admin/adjustments`, { method: "POST", headers: admin, body: JSON.stringify({ account: stranger, amountFen: 1000, reason: "cross-origin test" }) });
      await refused.locator("#quota").filter({ hasText: "¥10.00 available" }).waitFor({ timeout: 10_000 });
      await refused.getByRole("button", { name: "Send a sponsored UserOperation" }).click();
      const alert = refused.getByRole("alert");
      await alert.filter({ hasText: "the paymaster refused: origin_not_allowed (-32135)" }).waitFor({ timeout: 20_000 });
      assert.match((await alert.textContent())!, new RegExp(`may not be used from ${other.origin.replace(/\./g, "\\.")}; its policy allows`));
      assert.doesNotMatch((await alert.textContent())!, /RPC Request failed/);
      await refused.locator("#quota").filter({ hasText: "¥10.00 available, ¥0.00 held" }).waitFor();
      await screenshot(refused, "dapp-origin-refused");
    } finally {
      await fetch(`${serverUrl}/admin/api-keys/${demoKeyId}/policy`, { method: "PUT", headers: admin, body: "{}" });
      allowed.server.close();
      other.server.close();
    }
  });

  it("the DApp's account picker: an EIP-7702 EOA on EntryPoint v0.8, then the same EOA on v0.9, each lands a sponsored operation and is settled", async () => {
    const admin = { authorization: `Bearer ${adminToken}`, "content-type": "application/json" };
    const dapp = await context.newPage();
    const errors = watchErrors(dapp);
    await dapp.goto(`${serverUrl}/dapp`);
    const simple = (await dapp.locator("#address").filter({ hasText: /^0x[0-9a-fA-F]{40}$/ }).textContent())!;
    await dapp.getByLabel("Account type").selectOption("7702-0.8");
    await dapp.waitForLoadState("load");
    const eoa = (await dapp.locator("#address").filter({ hasText: /^0x[0-9a-fA-F]{40}$/ }).textContent())!;
    assert.notEqual(eoa, simple, "the EOA itself is the account");
    const credit = await fetch(`${serverUrl}/admin/adjustments`, { method: "POST", headers: admin, body: JSON.stringify({ account: eoa, amountFen: 1000, reason: "7702 demo test" }) });
    assert.equal(credit.status, 201, await credit.text());
    for (const type of ["7702-0.8", "7702-0.9"]) {
      if (type !== "7702-0.8") {
        await dapp.getByLabel("Account type").selectOption(type);
        await dapp.waitForLoadState("load");
        assert.equal(await dapp.locator("#address").filter({ hasText: /^0x[0-9a-fA-F]{40}$/ }).textContent(), eoa, "the same EOA on another EntryPoint");
      }
      await dapp.locator("#quota").filter({ hasText: /available, ¥0\.00 held/ }).waitFor({ timeout: 10_000 });
      await dapp.getByRole("button", { name: "Send a sponsored UserOperation" }).click();
      // settled, or the page's alert says why not
      await dapp.locator("#status:has-text('Settled'), #error:visible").first().waitFor({ timeout: 60_000 });
      assert.equal(await dapp.locator("#error").isVisible(), false, `${type}: ${await dapp.locator("#error").textContent()}`);
      assert.match((await dapp.locator("#charged").textContent())!, /^¥\d+\.\d\d$/);
      await dapp.locator("#eth").filter({ hasText: "0 ETH" }).waitFor();
    }
    await screenshot(dapp, "dapp-7702");
    assert.deepEqual(errors, []);
    assert.deepEqual(await accessibilityProblems(dapp), []);
  });

  /** The demo API key, as the sandbox's public configuration offers it to the demo DApp. */
  async function demoKey(): Promise<string> {
    return ((await (await fetch(`${serverUrl}/v1/config`)).json()) as { demoApiKey: string }).demoApiKey;
  }
});
