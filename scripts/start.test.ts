import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createPublicClient, http } from "viem";
import { ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07 } from "../server/chain/addresses";
import { freePort } from "./lib/anvil";
import { readPaymasterStatus } from "./lib/operator";

const ROOT = path.resolve(__dirname, "..");

/** Collects a child's output and resolves when a line matches. */
function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; output so far:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) {
        clearTimeout(timer);
        resolve(output);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (!pattern.test(output)) reject(new Error(`exited with ${code} before ${pattern}:\n${output}`));
    });
  });
}

describe("npm start: the local stack", () => {
  let child: ChildProcess;
  let port: number;
  let serverPort: number;
  let output: string;
  const deploymentsDir = mkdtempSync(path.join(tmpdir(), "fiat-paymaster-start-"));

  before(async () => {
    port = await freePort();
    serverPort = await freePort();
    child = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], {
      cwd: ROOT,
      env: {
        ...process.env,
        ANVIL_PORT: String(port),
        PORT: String(serverPort),
        SIMULATOR_PORT: "0",
        DEPLOYMENTS_DIR: deploymentsDir,
        DATA_DIR: path.join(deploymentsDir, "pglite"),
        DATABASE_URL: "", // the local stack runs on PGlite, whatever the tests run with
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
    for (const address of [ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07]) {
      assert.notEqual(await client.getCode({ address }), undefined, `${address} has code`);
    }
  });

  it("runs the server on PGlite against the gateway simulator: a top-up order gets a QR code from the simulator", async () => {
    const ready = await fetch(`http://127.0.0.1:${serverPort}/readyz`).then((r) => r.json());
    assert.deepEqual(ready, { status: "ready", database: "pglite", providers: ["alipay", "wechat"] });
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

  it("Ctrl-C stops anvil, the simulator and the server, and exits cleanly", async () => {
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    assert.equal(await exited, 0);
    await assert.rejects(fetch(`http://127.0.0.1:${port}`, { method: "POST", body: "{}" }), "anvil no longer listens");
    await assert.rejects(fetch(`http://127.0.0.1:${serverPort}/healthz`), "the server no longer listens");
    assert.ok(existsSync(path.join(deploymentsDir, "31337.json")));
  });
});
