import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { type Address, createPublicClient, http } from "viem";
import {
  ENTRY_POINT_V07,
  ENTRY_POINT_V08,
  ENTRY_POINT_V09,
  SIMPLE_7702_ACCOUNT_V08,
  SIMPLE_7702_ACCOUNT_V09,
  SIMPLE_ACCOUNT_FACTORY_V07,
  SIMPLE_ACCOUNT_FACTORY_V08,
} from "../server/chain/addresses";
import { freePort } from "../devtools/chain/anvil";
import { readPaymasterStatus } from "../server/chain/operator";
import { waitForOutput } from "../devtools/testing/childOutput";

const ROOT = path.resolve(__dirname, "..");


describe("npm start: the local stack", () => {
  let child: ChildProcess;
  let port: number;
  let serverPort: number;
  let bundlerPort: number;
  let output: string;
  const deploymentsDir = mkdtempSync(path.join(tmpdir(), "fiat-paymaster-start-"));

  before(async () => {
    port = await freePort();
    serverPort = await freePort();
    bundlerPort = await freePort();
    child = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], {
      cwd: ROOT,
      env: {
        ...process.env,
        ANVIL_PORT: String(port),
        PORT: String(serverPort),
        BUNDLER_PORT: String(bundlerPort),
        SIMULATOR_PORT: "0",
        DEPLOYMENTS_DIR: deploymentsDir,
        DATA_DIR: path.join(deploymentsDir, "pglite"),
        LOCAL_STACK_FILE: path.join(deploymentsDir, "local-stack.json"),
        DATABASE_URL: "", // the local stack runs on PGlite, whatever the tests run with
        REDIS_URL: "", // and on per-process rate limits
        SANDBOX_DIR: path.join(deploymentsDir, "sandbox"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    output = await waitForOutput(child, /Press Ctrl-C to stop/, 60_000);
  });
  after(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(deploymentsDir, { recursive: true, force: true });
  });

  it("prints the chain URL and the canonical and paymaster addresses", () => {
    assert.match(output, new RegExp(`chain RPC\\s+http://127\\.0\\.0\\.1:${port}`));
    assert.ok(output.includes(ENTRY_POINT_V07));
    assert.ok(output.includes(SIMPLE_ACCOUNT_FACTORY_V07));
    assert.match(output, /FiatPaymaster\s+0x[0-9a-fA-F]{40}/);
  });

  it("leaves the paymaster deployed, signed for, deposited and staked, and records it", async () => {
    const deployment = JSON.parse(readFileSync(path.join(deploymentsDir, "31337.json"), "utf8"));
    assert.ok(output.includes(deployment.paymaster));
    const client = createPublicClient({ transport: http(`http://127.0.0.1:${port}`) });
    const status = await readPaymasterStatus(client, deployment.paymaster);
    assert.equal(status.signers.length, 1);
    assert.equal(status.deposit, 10n * 10n ** 18n);
    assert.equal(status.stake, 10n ** 18n);
    assert.equal(status.staked, true);
    for (const address of [ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07, ENTRY_POINT_V08, SIMPLE_ACCOUNT_FACTORY_V08, SIMPLE_7702_ACCOUNT_V08, ENTRY_POINT_V09, SIMPLE_7702_ACCOUNT_V09]) {
      assert.notEqual(await client.getCode({ address }), undefined, `${address} has code`);
    }
    for (const [version, file] of [["0.8", "31337-ep0.8.json"], ["0.9", "31337-ep0.9.json"]] as const) {
      const record = JSON.parse(readFileSync(path.join(deploymentsDir, file), "utf8")) as { paymaster: Address; entryPointVersion: string };
      assert.equal(record.entryPointVersion, version);
      assert.ok(output.includes(record.paymaster), `the v${version} paymaster is printed`);
      const v = await readPaymasterStatus(client, record.paymaster);
      assert.deepEqual([v.signers.length, v.deposit, v.stake, v.staked], [1, 10n * 10n ** 18n, 10n ** 18n, true]);
    }
  });

  it("runs the alto bundler on the chain: the printed bundler URL serves the three canonical EntryPoints", async () => {
    const bundlerUrl = /bundler \(alto\)\s+(http:\/\/\S+)/.exec(output)?.[1];
    assert.equal(bundlerUrl, `http://127.0.0.1:${bundlerPort}`);
    const res = await fetch(bundlerUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_supportedEntryPoints", params: [] }),
    });
    assert.deepEqual(((await res.json()) as { result: unknown }).result, [ENTRY_POINT_V07, ENTRY_POINT_V08, ENTRY_POINT_V09]);
  });

  it("runs the server on PGlite against the gateway simulator: a top-up order gets a QR code from the simulator", async () => {
    const ready = (await fetch(`http://127.0.0.1:${serverPort}/readyz`).then((r) => r.json())) as {
      status: string;
      database: string;
      providers: string[];
      sponsorship: string;
      chains: { chainId: number; rpc: string; depositHealthy: boolean }[];
    };
    assert.equal(ready.status, "ready");
    assert.equal(ready.database, "pglite");
    assert.deepEqual(ready.providers, ["alipay", "wechat"]);
    assert.equal(ready.sponsorship, "on");
    assert.deepEqual(ready.chains.map((c) => [c.chainId, c.rpc, c.depositHealthy]), [[31337, "ok", true]]);
    const simulatorUrl = /gateway simulator\s+(http:\/\/\S+)/.exec(output)?.[1];
    assert.ok(simulatorUrl, "the simulator URL is printed");
    const res = await fetch(`http://127.0.0.1:${serverPort}/v1/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ account: `0x${"22".repeat(20)}`, amountFen: 1000, provider: "wechat" }),
    });
    const order = (await res.json()) as { qrCode: string };
    assert.equal(res.status, 201);
    assert.ok(order.qrCode.startsWith(`${simulatorUrl}/payer/wechat/`), order.qrCode);
  });

  /** `npm run demo` against this stack: its exit code and everything it printed. */
  async function runDemo(env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
    const demo = spawn(process.execPath, ["--import", "tsx", "scripts/demo.ts"], {
      cwd: ROOT,
      env: { ...process.env, LOCAL_STACK_FILE: path.join(deploymentsDir, "local-stack.json"), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    demo.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    demo.stderr?.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => demo.once("exit", resolve));
    return { code, out };
  }

  it("npm run demo, ten times in a row: each zero-ETH account tops up ¥10, its sponsored operation lands through alto and is charged what it cost, and the charge stays within 10 % of the first", async () => {
    const charges: number[] = [];
    for (let run = 1; run <= 10; run++) {
      const { code, out } = await runDemo();
      assert.equal(code, 0, `run ${run}: ${out}`);
      assert.match(out, /a new SimpleAccount 0x[0-9a-fA-F]{40}: 0 ETH/);
      assert.match(out, /credited the quota: available ¥10\.00/);
      assert.match(out, /landed in block \d+: success true, gas used \d+/);
      const charged = /charged ¥(\d+\.\d\d) for \d+ gas/.exec(out);
      const balances = /balance before ¥10\.00 → after ¥(\d+\.\d\d)/.exec(out);
      assert.ok(charged && balances, out);
      assert.ok(Number(charged[1]) > 0);
      assert.equal((10 - Number(charged[1])).toFixed(2), balances[1]);
      charges.push(Math.round(Number(charged[1]) * 100));
    }
    // alto's bids and anvil's fee suggestion used to feed each other: ¥1.33 → ¥2.21 → ¥3.86, then a fee refusal
    const first = charges[0]!;
    for (const [i, fen] of charges.entries()) assert.ok(Math.abs(fen - first) * 10 <= first, `run ${i + 1} charged ${fen} fen, the first ${first} fen: ${charges.join(", ")}`);
  });

  it("npm run demo shows a refusal with the paymaster's reason and message, not viem's \"RPC Request failed.\"", async () => {
    const { code, out } = await runDemo({ API_KEY: `fpk_000000000000_${"a".repeat(43)}` });
    assert.notEqual(code, 0);
    assert.match(out, /error: the paymaster refused: unauthorized \(-32121\): a valid API key is required/);
    assert.doesNotMatch(out, /RPC Request failed/);
  });

  it("Ctrl-C stops anvil, the bundler, the simulator and the server, and exits cleanly", async () => {
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    assert.equal(await exited, 0);
    await assert.rejects(fetch(`http://127.0.0.1:${port}`, { method: "POST", body: "{}" }), "anvil no longer listens");
    await assert.rejects(fetch(`http://127.0.0.1:${bundlerPort}`, { method: "POST", body: "{}" }), "the bundler no longer listens");
    await assert.rejects(fetch(`http://127.0.0.1:${serverPort}/healthz`), "the server no longer listens");
    assert.ok(existsSync(path.join(deploymentsDir, "31337.json")));
  });
});
