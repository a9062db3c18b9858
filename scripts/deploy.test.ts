/**
 * Specification of `npm run deploy` (scripts/deploy.ts), run against real anvil chains.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Address, type Hex, type PublicClient, pad, parseEther } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { ENTRY_POINT_V07, ENTRY_POINT_V08, ENTRY_POINT_V09 } from "../server/chain/addresses";
import { runDeploy } from "./deploy";
import { runPaymasterCli } from "./paymaster";
import { type Anvil, startAnvil } from "../devtools/chain/anvil";
import { installCanonicalContracts } from "../server/chain/canonical";
import type { Env } from "./lib/cli";
import { type PaymasterDeployment, paymasterAddress } from "../server/chain/deploy";
import { DEV_KEYS, localClients } from "../devtools/chain/localChain";
import { readDepositInfo, readPaymasterStatus } from "../server/chain/operator";

/** anvil default key #3: deploys in these tests, so its nonce counts exactly the deploy script's transactions. */
const DEPLOYER_KEY: Hex = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const DEPLOYER = privateKeyToAccount(DEPLOYER_KEY).address;
const SIGNER = privateKeyToAccount(DEV_KEYS.signer).address;
const REPO_ROOT = path.resolve(__dirname, "..");

type Outcome = { lines: string[]; output: string };
type Failure = { error: Error; lines: string[]; output: string };

async function deploy(argv: string[], env: Env): Promise<Outcome> {
  const lines: string[] = [];
  const code = await runDeploy(argv, env, (line) => lines.push(line));
  assert.equal(code, 0, `runDeploy returned ${code}:\n${lines.join("\n")}`);
  return { lines, output: lines.join("\n") };
}

async function deployFailure(argv: string[], env: Env): Promise<Failure> {
  const lines: string[] = [];
  try {
    await runDeploy(argv, env, (line) => lines.push(line));
  } catch (error) {
    assert.ok(error instanceof Error, `expected an Error, got ${String(error)}`);
    return { error, lines, output: lines.join("\n") };
  }
  assert.fail(`runDeploy succeeded but should have failed:\n${lines.join("\n")}`);
}

/** The key must not appear in any form: with or without 0x, in any case, or as a number. */
function assertKeyNotIn(text: string, key: Hex = DEPLOYER_KEY): void {
  assert.ok(!text.toLowerCase().includes(key.slice(2).toLowerCase()), `the private key appears in:\n${text}`);
  assert.ok(!text.includes(BigInt(key).toString()), `the private key (as a number) appears in:\n${text}`);
}

/** anvil with EntryPoint v0.7 and the SimpleAccountFactory at their canonical addresses, installed by key #0. */
async function chainWithEntryPoint(chainId?: number): Promise<{ anvil: Anvil; client: PublicClient }> {
  const anvil = await startAnvil({ chainId });
  try {
    const { client, wallet } = localClients(anvil.rpcUrl, anvil.chainId, DEV_KEYS.owner);
    await installCanonicalContracts(client, wallet);
    return { anvil, client };
  } catch (error) {
    await anvil.stop();
    throw error;
  }
}

function readRecord(dir: string, chainId: number): PaymasterDeployment {
  return JSON.parse(readFileSync(path.join(dir, `${chainId}.json`), "utf8")) as PaymasterDeployment;
}

const tempDir = () => mkdtempSync(path.join(os.tmpdir(), "deploy-test-"));
const nonceOf = (client: PublicClient, address: Address) => client.getTransactionCount({ address, blockTag: "latest" });

describe("deploy on a chain with EntryPoint v0.7", () => {
  let anvil: Anvil;
  let client: PublicClient;
  let dir: string;
  let env: Env;
  const args = () => ["--signer", SIGNER, "--deposit", "0.3", "--stake", "0.2", "--unstake-delay", "3600", "--deployments", dir];
  const expected = paymasterAddress(DEPLOYER);
  let first: Outcome;

  before(async () => {
    ({ anvil, client } = await chainWithEntryPoint());
    dir = tempDir();
    env = { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY };
    first = await deploy(args(), env);
  });
  after(async () => {
    await anvil?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("deploys FiatPaymaster at its CREATE2 address, owned by the deployer", async () => {
    assert.notEqual(await client.getCode({ address: expected }), undefined);
    const status = await readPaymasterStatus(client, expected);
    assert.equal(status.owner, DEPLOYER);
    assert.equal(status.entryPoint, ENTRY_POINT_V07);
    assert.equal(first.lines.at(-1), `FiatPaymaster ${expected} on chain ${anvil.chainId}, owner ${DEPLOYER}`);
  });

  it("adds the signer and brings deposit and stake exactly to the minimums with the asked unstake delay", async () => {
    const status = await readPaymasterStatus(client, expected);
    assert.deepEqual(status.signers, [SIGNER]);
    const info = await readDepositInfo(client, expected);
    assert.equal(info.deposit, parseEther("0.3"));
    assert.equal(info.stake, parseEther("0.2"));
    assert.equal(info.staked, true);
    assert.equal(Number(info.unstakeDelaySec), 3600);
    assert.equal(Number(info.withdrawTime), 0);
  });

  it("prints each step: chain and deployer, EntryPoint, deployment, signer, deposit, stake, record", () => {
    const steps = [
      new RegExp(`^chain ${anvil.chainId}, deployer ${DEPLOYER} \\(\\d+(\\.\\d+)? ETH\\)$`),
      new RegExp(`^EntryPoint v0\\.7 found at ${ENTRY_POINT_V07}$`),
      new RegExp(`^FiatPaymaster: deploying to ${expected}`),
      new RegExp(`^FiatPaymaster: deployed at ${expected} \\(tx 0x[0-9a-f]{64}, block \\d+\\)$`),
      new RegExp(`^signer ${SIGNER}: added \\(tx 0x[0-9a-f]{64}\\)$`),
      /^deposit: added 0\.3 ETH, now 0\.3 ETH \(tx 0x[0-9a-f]{64}\)$/,
      /^stake: added 0\.2 ETH, unstake delay 3600 s \(tx 0x[0-9a-f]{64}\)$/,
      new RegExp(`^wrote ${escape(path.join(dir, `${anvil.chainId}.json`))}$`),
      new RegExp(`^FiatPaymaster ${expected} on chain ${anvil.chainId}, owner ${DEPLOYER}$`),
    ];
    assert.equal(first.lines.length, steps.length, first.output);
    steps.forEach((step, i) => assert.match(first.lines[i]!, step));
    assertKeyNotIn(first.output);
  });

  it("writes <deployments>/<chainId>.json with the address, owner, signers and the deployment transaction", async () => {
    const record = readRecord(dir, anvil.chainId);
    assert.equal(record.chainId, anvil.chainId);
    assert.equal(record.paymaster, expected);
    assert.equal(record.entryPoint, ENTRY_POINT_V07);
    assert.equal(record.owner, DEPLOYER);
    assert.deepEqual(record.signers, [SIGNER]);
    assert.equal(record.salt, pad("0x0"));
    assert.ok(record.transactionHash, "the record names the deployment transaction");
    const receipt = await client.getTransactionReceipt({ hash: record.transactionHash });
    assert.equal(receipt.status, "success");
    assert.equal(record.blockNumber, receipt.blockNumber.toString());
    assert.ok(!existsSync(path.join(dir, `${anvil.chainId}.json.tmp`)), "no temporary file is left behind");
  });

  it("run again with the same arguments, finds the deployment, sends no transaction and keeps the record", async () => {
    const recordBefore = readRecord(dir, anvil.chainId);
    const nonceBefore = await nonceOf(client, DEPLOYER);
    const again = await deploy(args(), env);
    assert.equal(await nonceOf(client, DEPLOYER), nonceBefore, "no transaction was sent");
    assert.ok(again.lines.includes(`FiatPaymaster: already at ${expected}`), again.output);
    assert.ok(again.lines.includes(`signer ${SIGNER}: present`), again.output);
    assert.ok(again.lines.includes("deposit: 0.3 ETH"), again.output);
    assert.ok(again.lines.includes("stake: 0.2 ETH, staked, unstake delay 3600 s"), again.output);
    assert.doesNotMatch(again.output, /deploying|added/);
    assert.equal(again.lines.at(-1), `FiatPaymaster ${expected} on chain ${anvil.chainId}, owner ${DEPLOYER}`);
    const recordAfter = readRecord(dir, anvil.chainId);
    assert.equal(recordAfter.paymaster, expected);
    assert.equal(recordAfter.transactionHash, recordBefore.transactionHash);
    assert.equal(recordAfter.blockNumber, recordBefore.blockNumber);
  });

  it("run with higher minimums, sends only the missing deposit and stake", async () => {
    const nonceBefore = await nonceOf(client, DEPLOYER);
    const more = await deploy(["--signer", SIGNER, "--deposit", "0.5", "--stake", "0.25", "--unstake-delay", "3600", "--deployments", dir], env);
    assert.equal(await nonceOf(client, DEPLOYER), nonceBefore + 2, "one deposit and one stake transaction");
    assert.ok(more.lines.some((l) => l.startsWith("deposit: added 0.2 ETH, now 0.5 ETH")), more.output);
    assert.ok(more.lines.some((l) => l.startsWith("stake: added 0.05 ETH, unstake delay 3600 s")), more.output);
    const info = await readDepositInfo(client, expected);
    assert.equal(info.deposit, parseEther("0.5"));
    assert.equal(info.stake, parseEther("0.25"));
    assert.equal(Number(info.unstakeDelaySec), 3600);
  });

  it("--stake 0 asks for no stake: a fresh paymaster is deployed and left unstaked", async () => {
    const nonceBefore = await nonceOf(client, DEPLOYER);
    const other = tempDir();
    try {
      await deploy(["--salt", "0x05", "--stake", "0", "--deployments", other], env);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    assert.equal(await nonceOf(client, DEPLOYER), nonceBefore + 1, "only the deployment transaction");
    const info = await readDepositInfo(client, paymasterAddress(DEPLOYER, pad("0x05")));
    assert.equal(info.stake, 0n);
    assert.equal(info.staked, false);
  });
});

describe("deploy: the address depends only on owner and salt", () => {
  let chainA: { anvil: Anvil; client: PublicClient };
  let chainB: { anvil: Anvil; client: PublicClient };
  let dir: string;
  const salt1 = pad("0x01");
  const envOf = (anvil: Anvil): Env => ({ RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY });

  before(async () => {
    [chainA, chainB] = await Promise.all([chainWithEntryPoint(1001), chainWithEntryPoint(1002)]);
    dir = tempDir();
  });
  after(async () => {
    await Promise.all([chainA?.anvil.stop(), chainB?.anvil.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the same owner and salt give the same address on chains with different ids", async () => {
    assert.equal(await chainA.client.getChainId(), 1001);
    assert.equal(await chainB.client.getChainId(), 1002);
    await deploy(["--salt", "0x01", "--deployments", dir], envOf(chainA.anvil));
    await deploy(["--salt", "0x01", "--deployments", dir], envOf(chainB.anvil));
    const onA = readRecord(dir, 1001);
    const onB = readRecord(dir, 1002);
    assert.equal(onA.paymaster, onB.paymaster);
    assert.equal(onA.paymaster, paymasterAddress(DEPLOYER, salt1));
    assert.equal(onA.salt, salt1);
    for (const { client } of [chainA, chainB]) {
      assert.equal((await readPaymasterStatus(client, onA.paymaster)).owner, DEPLOYER);
    }
  });

  it("a different salt gives a different address", async () => {
    const { lines } = await deploy(["--salt", "0x02", "--deployments", dir], envOf(chainA.anvil));
    const other = readRecord(dir, 1001).paymaster;
    assert.equal(other, paymasterAddress(DEPLOYER, pad("0x02")));
    assert.notEqual(other, paymasterAddress(DEPLOYER, salt1));
    assert.equal(lines.at(-1), `FiatPaymaster ${other} on chain 1001, owner ${DEPLOYER}`);
    assert.equal((await readPaymasterStatus(chainA.client, other)).owner, DEPLOYER);
  });

  it("--owner sets the owner, and a different owner gives a different address", async () => {
    const owner = privateKeyToAccount(DEV_KEYS.bundler).address;
    await deploy(["--owner", owner, "--salt", "0x01", "--deployments", dir], envOf(chainB.anvil));
    const record = readRecord(dir, 1002);
    assert.equal(record.paymaster, paymasterAddress(owner, salt1));
    assert.notEqual(record.paymaster, paymasterAddress(DEPLOYER, salt1));
    assert.equal(record.owner, owner);
    assert.equal((await readPaymasterStatus(chainB.client, record.paymaster)).owner, owner);
  });

  it("re-finding an earlier deployment records no transaction rather than another deployment's", async () => {
    // 1001.json now describes the salt-2 paymaster; the salt-1 one is found again without a transaction
    const later = readRecord(dir, 1001);
    assert.ok(later.transactionHash);
    await deploy(["--salt", "0x01", "--deployments", dir], envOf(chainA.anvil));
    const record = readRecord(dir, 1001);
    assert.equal(record.paymaster, paymasterAddress(DEPLOYER, salt1));
    // its own transaction is not known any more: the record says so rather than borrowing the salt-2 one
    assert.equal(record.transactionHash, null);
    assert.equal(record.blockNumber, null);
  });
});

describe("deploy --entry-point-version: one paymaster per EntryPoint, each with its own record", () => {
  let anvil: Anvil;
  let client: PublicClient;
  let dir: string;
  let env: Env;
  const args = (version: string) => ["--entry-point-version", version, "--signer", SIGNER, "--deposit", "0.2", "--stake", "0.1", "--deployments", dir];

  before(async () => {
    anvil = await startAnvil();
    const { client: c, wallet } = localClients(anvil.rpcUrl, anvil.chainId, DEV_KEYS.owner);
    client = c;
    await installCanonicalContracts(client, wallet, () => {}, ["0.7", "0.8"]); // v0.9 is missing on purpose
    dir = tempDir();
    env = { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY };
  });
  after(async () => {
    await anvil?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("v0.8: FiatPaymasterV08 at its own CREATE2 address, serving EntryPoint v0.8, recorded in <chainId>-ep0.8.json", async () => {
    const expected = paymasterAddress(DEPLOYER, pad("0x0"), "0.8");
    assert.notEqual(expected, paymasterAddress(DEPLOYER), "each version's contract has its own address");
    const { lines } = await deploy(args("0.8"), env);
    assert.ok(lines.includes(`EntryPoint v0.8 found at ${ENTRY_POINT_V08}`), lines.join("\n"));
    assert.equal(lines.at(-1), `FiatPaymasterV08 ${expected} on chain ${anvil.chainId}, owner ${DEPLOYER}`);
    const status = await readPaymasterStatus(client, expected);
    assert.equal(status.entryPoint, ENTRY_POINT_V08);
    assert.deepEqual(status.signers, [SIGNER]);
    assert.equal(status.deposit, parseEther("0.2"), "the deposit is read from EntryPoint v0.8");
    assert.equal(status.staked, true);
    const record = JSON.parse(readFileSync(path.join(dir, `${anvil.chainId}-ep0.8.json`), "utf8")) as PaymasterDeployment;
    assert.equal(record.paymaster, expected);
    assert.equal(record.entryPoint, ENTRY_POINT_V08);
    assert.equal(record.entryPointVersion, "0.8");
    assert.ok(!existsSync(path.join(dir, `${anvil.chainId}.json`)), "the v0.7 record is not touched");

    const nonce = await nonceOf(client, DEPLOYER);
    await deploy(args("v0.8"), env);
    assert.equal(await nonceOf(client, DEPLOYER), nonce, "a second run sends nothing");
  });

  it("the operator CLI finds each version's paymaster by --entry-point-version", async () => {
    await deploy(args("0.7"), env);
    for (const [version, contract] of [["0.7", paymasterAddress(DEPLOYER)], ["0.8", paymasterAddress(DEPLOYER, pad("0x0"), "0.8")]] as const) {
      const lines: string[] = [];
      await runPaymasterCli(["status", "--entry-point-version", version, "--deployments", dir], { RPC_URL: anvil.rpcUrl }, (line) => lines.push(line));
      assert.match(lines.join("\n"), new RegExp(`paymaster    ${contract}`));
      assert.match(lines.join("\n"), new RegExp(`entryPoint   ${version === "0.7" ? ENTRY_POINT_V07 : ENTRY_POINT_V08}`));
    }
    await assert.rejects(
      runPaymasterCli(["status", "--entry-point-version", "0.9", "--deployments", dir], { RPC_URL: anvil.rpcUrl }, () => {}),
      (error: Error) => error.name === "UsageError" && error.message.includes(`no v0.9 deployment for chain ${anvil.chainId}`) && error.message.includes(`${anvil.chainId}-ep0.9.json`),
    );
    await assert.rejects(
      runPaymasterCli(["status", "--entry-point-version", "0.8", "--paymaster", DEPLOYER], { RPC_URL: anvil.rpcUrl }, () => {}),
      /--paymaster and --entry-point-version exclude each other/,
    );
  });

  it("v0.9 on a chain without EntryPoint v0.9 refuses naming it; an unknown version is a usage error; nothing is sent", async () => {
    const nonce = await nonceOf(client, DEPLOYER);
    const { error } = await deployFailure(args("0.9"), env);
    assert.equal(error.message, `EntryPoint v0.9 is not deployed at ${ENTRY_POINT_V09} on chain ${anvil.chainId}: refusing to deploy`);
    const bad = await deployFailure(args("0.6"), env);
    assert.equal(bad.error.name, "UsageError");
    assert.equal(bad.error.message, "--entry-point-version must be one of 0.7, 0.8, 0.9: got 0.6");
    assert.equal(await nonceOf(client, DEPLOYER), nonce);
    assert.ok(!existsSync(path.join(dir, `${anvil.chainId}-ep0.9.json`)));
  });
});

describe("deploy on a chain without EntryPoint v0.7", () => {
  let anvil: Anvil;
  let client: PublicClient;
  let dir: string;

  before(async () => {
    anvil = await startAnvil();
    ({ client } = localClients(anvil.rpcUrl, anvil.chainId));
    dir = tempDir();
  });
  after(async () => {
    await anvil?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses with a message naming the EntryPoint, sends nothing and writes no record", async () => {
    const { error } = await deployFailure(["--deposit", "0.1", "--stake", "0.1", "--deployments", dir], {
      RPC_URL: anvil.rpcUrl,
      DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY,
    });
    assert.equal(error.message, `EntryPoint v0.7 is not deployed at ${ENTRY_POINT_V07} on chain ${anvil.chainId}: refusing to deploy`);
    assert.equal(await nonceOf(client, DEPLOYER), 0);
    assert.equal(await client.getCode({ address: paymasterAddress(DEPLOYER) }), undefined);
    assert.ok(!existsSync(path.join(dir, `${anvil.chainId}.json`)));
  });

  it("as a command, exits 1 with a one-line `error: …` on stderr and no stack trace", async () => {
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", "scripts/deploy.ts", "--deployments", dir], {
        cwd: REPO_ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.once("error", reject);
      child.once("close", (code) => resolve({ code, stdout, stderr }));
    });
    assert.equal(result.code, 1, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
    assert.equal(
      result.stderr,
      `error: EntryPoint v0.7 is not deployed at ${ENTRY_POINT_V07} on chain ${anvil.chainId}: refusing to deploy\n`,
    );
    assert.match(result.stdout, new RegExp(`^chain ${anvil.chainId}, deployer ${DEPLOYER} `));
    assertKeyNotIn(result.stdout + result.stderr);
    assert.equal(await nonceOf(client, DEPLOYER), 0);
  });
});

describe("deploy: the deploying key and the RPC", () => {
  let anvil: Anvil;
  let client: PublicClient;
  let dir: string;

  before(async () => {
    ({ anvil, client } = await chainWithEntryPoint());
    dir = tempDir();
  });
  after(async () => {
    await anvil?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("without DEPLOYER_PRIVATE_KEY, refuses naming the variable and its _FILE form", async () => {
    const { error } = await deployFailure(["--deployments", dir], { RPC_URL: anvil.rpcUrl });
    assert.equal(error.message, "DEPLOYER_PRIVATE_KEY (or DEPLOYER_PRIVATE_KEY_FILE) is not set");
    const blank = await deployFailure(["--deployments", dir], { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: "  " });
    assert.equal(blank.error.message, "DEPLOYER_PRIVATE_KEY (or DEPLOYER_PRIVATE_KEY_FILE) is not set");
  });

  it("with a malformed key, refuses without echoing the key", async () => {
    const malformed = [
      `${DEPLOYER_KEY.slice(0, -1)}g`, // not hex
      DEPLOYER_KEY.slice(0, -2), // 31 bytes
      `${DEPLOYER_KEY}00`, // 33 bytes
    ];
    for (const key of malformed) {
      const { error, output } = await deployFailure(["--deployments", dir], { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: key });
      assert.equal(error.message, "DEPLOYER_PRIVATE_KEY is not a 32-byte hex private key");
      assert.ok(!`${error.stack}\n${output}`.includes(key.slice(2, 50)), `the key appears in ${error.stack}`);
    }
  });

  it("with a 32-byte key outside the secp256k1 range, refuses without echoing the key in any form", async () => {
    for (const key of [pad("0x0"), `0x${"ff".repeat(32)}` as Hex]) {
      const { error, output } = await deployFailure(["--deployments", dir], { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: key });
      assert.equal(error.message, "DEPLOYER_PRIVATE_KEY is not a valid secp256k1 private key");
      if (BigInt(key) !== 0n) assertKeyNotIn(`${error.stack}\n${output}`, key);
    }
  });

  it("reads the key from DEPLOYER_PRIVATE_KEY_FILE (trailing newline allowed) and never prints it", async () => {
    const keyFile = path.join(dir, "deployer.key");
    writeFileSync(keyFile, `${DEPLOYER_KEY}\n`, { mode: 0o600 });
    const { output, lines } = await deploy(["--signer", SIGNER, "--deployments", dir], { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY_FILE: keyFile });
    const record = readRecord(dir, anvil.chainId);
    assert.equal(record.owner, DEPLOYER);
    assert.equal((await readPaymasterStatus(client, record.paymaster)).owner, DEPLOYER);
    assert.equal(lines.at(-1), `FiatPaymaster ${record.paymaster} on chain ${anvil.chainId}, owner ${DEPLOYER}`);
    assertKeyNotIn(output);
  });

  it("with DEPLOYER_PRIVATE_KEY_FILE naming a missing file, refuses naming the variable and the file", async () => {
    const missing = path.join(dir, "no-such.key");
    const { error } = await deployFailure(["--deployments", dir], { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY_FILE: missing });
    assert.equal(error.message, `cannot read DEPLOYER_PRIVATE_KEY_FILE (${missing}): ENOENT`);
  });

  it("with an unreachable RPC URL, refuses saying it cannot reach the RPC, without the key", async () => {
    const { error, output } = await deployFailure(["--deployments", dir], { RPC_URL: "http://127.0.0.1:1", DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY });
    assert.match(error.message, /^cannot reach the RPC at http:\/\/127\.0\.0\.1:1: /);
    assertKeyNotIn(`${error.stack}\n${output}`);
  });

  it("without RPC_URL, or with one that is not an http(s) URL, refuses saying so", async () => {
    const unset = await deployFailure([], { DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY });
    assert.match(unset.error.message, /^RPC_URL is not set/);
    for (const url of ["127.0.0.1:8545", "localhost:8545", "ftp://127.0.0.1:8545"]) {
      const { error } = await deployFailure([], { RPC_URL: url, DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY });
      assert.match(error.message, /^RPC_URL (is not a URL|must be an http\(s\) URL)/, `${url}: ${error.message}`);
    }
  });

  it("rejects an unknown option and a malformed --salt, --signer or --deposit with a usage error", async () => {
    const env = { RPC_URL: anvil.rpcUrl, DEPLOYER_PRIVATE_KEY: DEPLOYER_KEY };
    const cases: [string[], RegExp][] = [
      [["--bogus"], /Unknown option '--bogus'/],
      [["--salt", "0xzz"], /--salt must be hex of at most 32 bytes/],
      [["--salt", `0x${"11".repeat(33)}`], /--salt must be hex of at most 32 bytes/],
      [["--signer", "0x1234"], /--signer is not an address: 0x1234/],
      [["--deposit", "abc"], /--deposit must be an amount in ETH like 0\.5: got abc/],
      [["--deposit=-1"], /--deposit must be an amount in ETH like 0\.5: got -1/],
      [["--deposit", "-1"], /Option '--deposit' argument is ambiguous/],
      [["--unstake-delay", "1.5"], /--unstake-delay must be a whole number of seconds/],
    ];
    const nonceBefore = await nonceOf(client, DEPLOYER);
    for (const [argv, message] of cases) {
      const { error } = await deployFailure([...argv, "--deployments", dir], env);
      assert.equal(error.name, "UsageError", `${argv.join(" ")}: ${error.message}`);
      assert.match(error.message, message);
    }
    assert.equal(await nonceOf(client, DEPLOYER), nonceBefore);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
