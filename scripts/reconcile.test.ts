/**
 * `npm run reconcile` as an operator runs it, in a child process: through a running server (--server, both
 * databases) and directly on the server's PostgreSQL database with the server's own configuration.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { writeSandboxDir } from "../devtools/simulator/server";
import { type DatabaseKind, testedDatabaseKinds } from "../devtools/testing/databases";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../devtools/testing/paymentsStack";
import { UsageError } from "./lib/cli";
import { parseArgs } from "./reconcile";

const ROOT = path.resolve(__dirname, "..");
const run = promisify(execFile);

async function reconcile(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "scripts/reconcile.ts", ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", TZ: "Asia/Shanghai", LOG_LEVEL: "silent", ...env },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("npm run reconcile: arguments", () => {
  const now = new Date("2026-12-03T04:00:00Z");
  it("takes a past CST day, scopes, a server and --json", () => {
    assert.deepEqual(parseArgs(["--date", "2026-12-02", "--scope", "wechat", "--scope", "chain:31337", "--json"], now), { day: "2026-12-02", scopes: ["wechat", "chain:31337"], json: true });
    assert.deepEqual(parseArgs(["--date", "2026-11-30", "--server", "http://127.0.0.1:8080"], now), { day: "2026-11-30", server: "http://127.0.0.1:8080", json: false });
  });
  it("refuses what it cannot do, naming the problem", () => {
    assert.throws(() => parseArgs([], now), (e: Error) => e instanceof UsageError && /--date is required/.test(e.message));
    assert.throws(() => parseArgs(["--date", "2026-02-30"], now), /not a calendar day/);
    assert.throws(() => parseArgs(["--date", "2026-12-03"], now), /not over yet in China Standard Time/);
    assert.throws(() => parseArgs(["--date", "2026-12-01", "--dry-run"], now), /unknown argument --dry-run/);
    assert.throws(() => parseArgs(["--date"], now), /--date needs a value/);
    assert.throws(() => parseArgs(["--date", "2026-12-01", "--server", "ftp://x"], now), /http\(s\) URL/);
  });
  it("exits 64 with the usage on bad arguments", async () => {
    const result = await reconcile(["--date", "tomorrow"], {});
    assert.equal(result.code, 64, result.stderr);
    assert.match(result.stderr, /YYYY-MM-DD/);
  });
});

for (const kind of testedDatabaseKinds() as DatabaseKind[]) {
  describe(`npm run reconcile against the simulator's bills [${kind}]`, () => {
    const DAY = "2026-09-15";
    let stack: Stack;
    let simNow = new Date(`${DAY}T12:00:00+08:00`);
    let orderId: string;
    const dir = mkdtempSync(path.join(tmpdir(), "fp-reconcile-"));
    before(async () => {
      stack = await startPaymentsStack(kind, { clock: () => simNow });
      const order = await stack.request("POST", "/v1/orders", { account: `0x${randomBytes(20).toString("hex")}`, amountFen: 1_500, provider: "wechat" });
      orderId = order.body.id;
      await payOnPayerPage("wechat", order.body.qrCode);
      await eventually(async () => (await stack.request("GET", `/v1/orders/${orderId}`)).body.status === "paid", 10_000, "credited");
      writeSandboxDir(dir, stack.simulator);
      simNow = new Date(); // the day is over and its bills are out
    });
    after(async () => {
      simNow = new Date();
      await stack?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("--server: the day ties out (exit 0), and the report names both gateways", async () => {
      const result = await reconcile(["--date", DAY, "--server", stack.url], { ADMIN_TOKEN });
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, new RegExp(`Reconciliation of ${DAY}`));
      assert.match(result.stdout, /alipay: ties out/);
      assert.match(result.stdout, /wechat: ties out/);
      assert.match(result.stdout, /RESULT: ties out/);
    });

    it("--server without ADMIN_TOKEN is a usage error; a wrong token is the server's 401", async () => {
      assert.equal((await reconcile(["--date", DAY, "--server", stack.url], {})).code, 64);
      const wrong = await reconcile(["--date", DAY, "--server", stack.url], { ADMIN_TOKEN: "not-the-admin-token-0123456789" });
      assert.equal(wrong.code, 3);
      assert.match(wrong.stderr, /HTTP 401/);
    });

    // (on PostgreSQL only: the test stack's PGlite lives in this process's memory, where no other process can reach it)
    if (kind === "postgres") it("directly on the database with the server's configuration: an amount off by one fen exits 1 and is listed with its cause", async () => {
      await stack.simulator.wechat.injectBillFault({ kind: "amount_off_by_one_fen", orderId });
      const result = await reconcile(["--date", DAY, "--scope", "wechat", "--json"], { DATABASE_URL: stack.databaseUrl!, SANDBOX_DIR: dir, PUBLIC_URL: stack.url });
      assert.equal(result.code, 1, result.stdout + result.stderr);
      const report = JSON.parse(result.stdout) as { tiesOut: boolean; differences: { kind: string; reference: string; expected: string; actual: string }[] };
      assert.equal(report.tiesOut, false);
      assert.deepEqual(
        report.differences.map((d) => [d.kind, d.reference, d.expected, d.actual]),
        [["amount_mismatch", orderId, "1500 fen", "1501 fen"]],
      );
    });
  });
}
