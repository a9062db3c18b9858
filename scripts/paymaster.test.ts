/**
 * Specification of the operator CLI `npm run paymaster` (scripts/paymaster.ts), run against real anvil chains
 * holding EntryPoint v0.7 and a deployed, staked FiatPaymaster (owner: anvil key #0, signer: key #1).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Address, type Hex, type PublicClient, createTestClient, formatEther, http, parseEther, zeroAddress } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { runPaymasterCli } from "./paymaster";
import type { Env } from "./lib/cli";
import { DEV_KEYS, type LocalChain, startLocalChain } from "../devtools/chain/localChain";
import { isPaymasterSigner, readDepositInfo, readPaymasterStatus } from "../server/chain/operator";

const OWNER = privateKeyToAccount(DEV_KEYS.owner).address;
const SIGNER = privateKeyToAccount(DEV_KEYS.signer).address;
/** anvil default key #3: funded, but not the paymaster's owner. */
const OTHER_KEY: Hex = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const OTHER = privateKeyToAccount(OTHER_KEY).address;
const DAY = 86_400;

type Outcome = { code: number; lines: string[]; output: string };

async function cli(argv: string[], env: Env): Promise<Outcome> {
  const lines: string[] = [];
  const code = await runPaymasterCli(argv, env, (line) => lines.push(line));
  return { code, lines, output: lines.join("\n") };
}

async function cliOk(argv: string[], env: Env): Promise<Outcome> {
  const outcome = await cli(argv, env);
  assert.equal(outcome.code, 0, outcome.output);
  return outcome;
}

async function cliFailure(argv: string[], env: Env): Promise<Error> {
  let outcome: Outcome;
  try {
    outcome = await cli(argv, env);
  } catch (error) {
    assert.ok(error instanceof Error, `expected an Error, got ${String(error)}`);
    return error;
  }
  assert.fail(`\`${argv.join(" ")}\` succeeded but should have failed:\n${outcome.output}`);
}

/** An address nobody has used: its balance is exactly what the CLI sent it. */
const freshAddress = (): Address => privateKeyToAccount(generatePrivateKey()).address;
const tempDir = () => mkdtempSync(path.join(os.tmpdir(), "paymaster-test-"));
const TX_LINE = (command: string) => new RegExp(`^${command}: done \\(tx 0x[0-9a-f]{64}\\)$`);

type Fixture = { chain: LocalChain; client: PublicClient; paymaster: Address; dir: string; env: (key?: Hex) => Env };

/** One local chain (anvil + EntryPoint + staked paymaster, recorded in a temp deployments dir) per describe. */
function useLocalChain(): Fixture {
  const fixture = {} as Fixture;
  before(async () => {
    fixture.dir = tempDir();
    fixture.chain = await startLocalChain({ deploymentsDir: fixture.dir });
    fixture.client = fixture.chain.client;
    fixture.paymaster = fixture.chain.paymaster;
    fixture.env = (key: Hex = DEV_KEYS.owner) => ({ RPC_URL: fixture.chain.anvil.rpcUrl, OPERATOR_PRIVATE_KEY: key });
  });
  after(async () => {
    await fixture.chain?.stop();
    if (fixture.dir) rmSync(fixture.dir, { recursive: true, force: true });
  });
  return fixture;
}

describe("paymaster status", () => {
  const f = useLocalChain();

  it("reads the paymaster from <deployments>/<chainId>.json and shows owner, deposit, stake, staked state, unstake delay and signers", async () => {
    const { lines } = await cliOk(["status", "--deployments", f.dir], { RPC_URL: f.chain.anvil.rpcUrl });
    assert.deepEqual(lines, [
      [
        `chain        31337`,
        `paymaster    ${f.paymaster}`,
        `entryPoint   0x0000000071727De22E5E9d8BAf0edAc6f37da032`,
        `owner        ${OWNER}`,
        `deposit      10 ETH`,
        `stake        1 ETH, staked, unstake delay ${DAY} s`,
        "unlock       locked (run `unlock` to start the delay)",
        `signers      ${SIGNER}`,
      ].join("\n"),
    ]);
  });

  it("needs no key", async () => {
    const { output } = await cliOk(["status", "--deployments", f.dir], { RPC_URL: f.chain.anvil.rpcUrl, OPERATOR_PRIVATE_KEY: "not a key" });
    assert.match(output, /^owner {8}0x/m);
  });

  it("with --paymaster, needs no deployment record", async () => {
    const empty = tempDir();
    try {
      const { output } = await cliOk(["status", "--paymaster", f.paymaster.toLowerCase(), "--deployments", empty], { RPC_URL: f.chain.anvil.rpcUrl });
      assert.match(output, new RegExp(`^paymaster {4}${f.paymaster}$`, "m"));
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("with --paymaster naming an address without code, says there is no contract there", async () => {
    const nowhere = freshAddress();
    const error = await cliFailure(["status", "--paymaster", nowhere], { RPC_URL: f.chain.anvil.rpcUrl });
    assert.equal(error.message, `no contract at ${nowhere} on chain 31337`);
  });

  it("without a deployment record, says which file is missing and to run `npm run deploy` or pass --paymaster", async () => {
    const empty = tempDir();
    try {
      const error = await cliFailure(["status", "--deployments", empty], { RPC_URL: f.chain.anvil.rpcUrl });
      assert.equal(error.name, "UsageError");
      assert.equal(
        error.message,
        `no v0.7 deployment for chain 31337 (${path.join(empty, "31337.json")} is missing): run \`npm run deploy\` or pass --paymaster`,
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("with a corrupt deployment record, names the file", async () => {
    const broken = tempDir();
    try {
      const file = path.join(broken, "31337.json");
      writeFileSync(file, "{ not json");
      const unreadable = await cliFailure(["status", "--deployments", broken], { RPC_URL: f.chain.anvil.rpcUrl });
      assert.match(unreadable.message, new RegExp(`^cannot read the deployment record ${escape(file)}: `));
      writeFileSync(file, JSON.stringify({ chainId: 31337, paymaster: "0x1234" }));
      const invalid = await cliFailure(["status", "--deployments", broken], { RPC_URL: f.chain.anvil.rpcUrl });
      assert.equal(invalid.message, `the deployment record ${file} has no valid paymaster address`);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });
});

describe("paymaster deposit and withdraw", () => {
  const f = useLocalChain();
  const deposit = async () => (await readDepositInfo(f.client, f.paymaster)).deposit;

  it("deposit 1.5 raises the EntryPoint deposit by exactly 1.5 ETH", async () => {
    const before = await deposit();
    const { lines } = await cliOk(["deposit", "1.5", "--deployments", f.dir], f.env());
    assert.equal(await deposit(), before + parseEther("1.5"));
    assert.match(lines[0]!, TX_LINE("deposit"));
    assert.equal(lines[1], `deposit ${formatEther(before + parseEther("1.5"))} ETH, stake 1 ETH, signers 1`);
  });

  it("deposit works from any funded key, not only the owner's, including one read from OPERATOR_PRIVATE_KEY_FILE", async () => {
    const keyFile = path.join(f.dir, "operator.key");
    writeFileSync(keyFile, `${OTHER_KEY.slice(2)}\n`, { mode: 0o600 });
    const before = await deposit();
    const { output } = await cliOk(["deposit", "0.000000000000000001", "--deployments", f.dir], {
      RPC_URL: f.chain.anvil.rpcUrl,
      OPERATOR_PRIVATE_KEY_FILE: keyFile,
    });
    assert.equal(await deposit(), before + 1n);
    assert.ok(!output.includes(OTHER_KEY.slice(2)), "the key is not printed");
  });

  it("deposit 0 is refused and sends nothing", async () => {
    const [before, nonce] = [await deposit(), await f.client.getTransactionCount({ address: OWNER })];
    const error = await cliFailure(["deposit", "0", "--deployments", f.dir], f.env());
    assert.equal(error.message, "the deposit amount must be greater than zero");
    assert.equal(await deposit(), before);
    assert.equal(await f.client.getTransactionCount({ address: OWNER }), nonce);
  });

  it("deposit of more than the key holds is refused naming both amounts", async () => {
    const error = await cliFailure(["deposit", "1000000", "--deployments", f.dir], f.env(OTHER_KEY));
    assert.match(error.message, new RegExp(`^${OTHER} holds [\\d.]+ ETH, less than 1000000 ETH$`));
  });

  it("withdraw <to> 0.75 moves exactly 0.75 ETH from the deposit to <to>", async () => {
    const to = freshAddress();
    const before = await deposit();
    const { lines } = await cliOk(["withdraw", to, "0.75", "--deployments", f.dir], f.env());
    assert.equal(await f.client.getBalance({ address: to }), parseEther("0.75"));
    assert.equal(await deposit(), before - parseEther("0.75"));
    assert.match(lines[0]!, TX_LINE("withdraw"));
  });

  it("withdrawing more than the deposit is refused naming both amounts, and nothing moves", async () => {
    const to = freshAddress();
    const [before, nonce] = [await deposit(), await f.client.getTransactionCount({ address: OWNER })];
    const asked = before + 1n;
    const error = await cliFailure(["withdraw", to, formatEther(asked), "--deployments", f.dir], f.env());
    assert.equal(error.message, `cannot withdraw ${formatEther(asked)} ETH: the deposit is ${formatEther(before)} ETH`);
    assert.equal(await deposit(), before);
    assert.equal(await f.client.getBalance({ address: to }), 0n);
    assert.equal(await f.client.getTransactionCount({ address: OWNER }), nonce);
  });

  it("withdraw to something that is not an address is refused", async () => {
    const error = await cliFailure(["withdraw", "0xnope", "1", "--deployments", f.dir], f.env());
    assert.equal(error.message, "recipient is not an address: 0xnope");
  });
});

describe("paymaster stake, unlock and withdraw-stake", () => {
  const f = useLocalChain();
  const info = () => readDepositInfo(f.client, f.paymaster);
  const to = freshAddress();

  it("stake 0.5 adds exactly 0.5 ETH of stake and keeps the paymaster staked with the default one-day delay", async () => {
    const { lines } = await cliOk(["stake", "0.5", "--deployments", f.dir], f.env());
    const after = await info();
    assert.equal(after.stake, parseEther("1.5"));
    assert.equal(after.staked, true);
    assert.equal(Number(after.unstakeDelaySec), DAY);
    assert.match(lines[0]!, TX_LINE("stake"));
    assert.equal(lines[1], "deposit 10 ETH, stake 1.5 ETH, signers 1");
  });

  it("stake with a lower --unstake-delay than the current one is refused, and nothing changes", async () => {
    const error = await cliFailure(["stake", "0.1", "--unstake-delay", "60", "--deployments", f.dir], f.env());
    assert.equal(error.message, `the unstake delay cannot go down: it is ${DAY} s, asked 60 s`);
    assert.equal((await info()).stake, parseEther("1.5"));
  });

  it("stake with a longer --unstake-delay raises the delay", async () => {
    await cliOk(["stake", "0.1", "--unstake-delay", String(DAY + 60), "--deployments", f.dir], f.env());
    const after = await info();
    assert.equal(after.stake, parseEther("1.6"));
    assert.equal(Number(after.unstakeDelaySec), DAY + 60);
  });

  it("withdraw-stake before unlock is refused, saying to run `unlock` first", async () => {
    const error = await cliFailure(["withdraw-stake", to, "--deployments", f.dir], f.env());
    assert.equal(error.message, "the stake is still locked: run `unlock` first");
    assert.equal((await info()).stake, parseEther("1.6"));
    assert.equal(await f.client.getBalance({ address: to }), 0n);
  });

  it("unlock starts the unstake delay: the paymaster is no longer staked and withdrawable one delay later", async () => {
    const { lines } = await cliOk(["unlock", "--deployments", f.dir], f.env());
    assert.match(lines[0]!, TX_LINE("unlock"));
    const after = await info();
    const block = await f.client.getBlock();
    assert.equal(after.staked, false);
    assert.equal(after.stake, parseEther("1.6"));
    assert.equal(Number(after.withdrawTime), Number(block.timestamp) + DAY + 60);
    const { output } = await cliOk(["status", "--deployments", f.dir], { RPC_URL: f.chain.anvil.rpcUrl });
    assert.match(output, new RegExp(`^stake {8}1\\.6 ETH, not staked, unstake delay ${DAY + 60} s$`, "m"));
    assert.match(output, new RegExp(`^unlock {7}withdrawable from ${escape(new Date(Number(after.withdrawTime) * 1000).toISOString())}$`, "m"));
  });

  it("unlock again is refused: the stake is already unlocking", async () => {
    const error = await cliFailure(["unlock", "--deployments", f.dir], f.env());
    assert.equal(error.message, "the paymaster is not staked (or already unlocking)");
  });

  it("withdraw-stake before the delay has passed is refused, naming the time it becomes withdrawable", async () => {
    const { withdrawTime } = await info();
    const error = await cliFailure(["withdraw-stake", to, "--deployments", f.dir], f.env());
    assert.equal(error.message, `the stake is withdrawable from ${new Date(Number(withdrawTime) * 1000).toISOString()}`);
    assert.equal((await info()).stake, parseEther("1.6"));
    assert.equal(await f.client.getBalance({ address: to }), 0n);
  });

  it("withdraw-stake after the delay sends the whole stake to the recipient", async () => {
    const testClient = createTestClient({ mode: "anvil", transport: http(f.chain.anvil.rpcUrl) });
    await testClient.increaseTime({ seconds: DAY + 60 });
    await testClient.mine({ blocks: 1 });
    const depositBefore = (await info()).deposit;
    const { lines } = await cliOk(["withdraw-stake", to, "--deployments", f.dir], f.env());
    assert.match(lines[0]!, TX_LINE("withdraw-stake"));
    assert.equal(await f.client.getBalance({ address: to }), parseEther("1.6"));
    const after = await info();
    assert.equal(after.stake, 0n);
    assert.equal(after.staked, false);
    assert.equal(Number(after.withdrawTime), 0);
    assert.equal(after.deposit, depositBefore, "the deposit is untouched");
  });

  it("withdraw-stake with no stake left is refused", async () => {
    const error = await cliFailure(["withdraw-stake", to, "--deployments", f.dir], f.env());
    assert.equal(error.message, "there is no stake to withdraw");
  });

  it("stake works again after a full withdrawal", async () => {
    await cliOk(["stake", "0.2", "--unstake-delay", "60", "--deployments", f.dir], f.env());
    const after = await info();
    assert.equal(after.stake, parseEther("0.2"));
    assert.equal(after.staked, true);
    assert.equal(Number(after.unstakeDelaySec), 60);
  });
});

describe("paymaster add-signer and remove-signer", () => {
  const f = useLocalChain();
  const newSigner = freshAddress();
  const signers = async () => (await readPaymasterStatus(f.client, f.paymaster)).signers;

  it("add-signer makes the address a signer: isSigner is true and signers() lists it", async () => {
    const { lines } = await cliOk(["add-signer", newSigner.toLowerCase(), "--deployments", f.dir], f.env());
    assert.match(lines[0]!, TX_LINE("add-signer"));
    assert.equal(lines[1], "deposit 10 ETH, stake 1 ETH, signers 2");
    assert.equal(await isPaymasterSigner(f.client, f.paymaster, newSigner), true);
    assert.deepEqual((await signers()).sort(), [SIGNER, newSigner].sort());
  });

  it("adding a signer twice is refused naming SignerAlreadyAdded, and sends nothing", async () => {
    const nonce = await f.client.getTransactionCount({ address: OWNER });
    const error = await cliFailure(["add-signer", newSigner, "--deployments", f.dir], f.env());
    assert.equal(error.message, `addSigner reverted: SignerAlreadyAdded(${newSigner})`);
    assert.equal(await f.client.getTransactionCount({ address: OWNER }), nonce);
    assert.deepEqual((await signers()).sort(), [SIGNER, newSigner].sort());
  });

  it("adding the zero address is refused naming InvalidSigner", async () => {
    const error = await cliFailure(["add-signer", zeroAddress, "--deployments", f.dir], f.env());
    assert.equal(error.message, `addSigner reverted: InvalidSigner(${zeroAddress})`);
  });

  it("remove-signer removes the address: isSigner is false and signers() no longer lists it", async () => {
    const { lines } = await cliOk(["remove-signer", newSigner, "--deployments", f.dir], f.env());
    assert.match(lines[0]!, TX_LINE("remove-signer"));
    assert.equal(await isPaymasterSigner(f.client, f.paymaster, newSigner), false);
    assert.deepEqual(await signers(), [SIGNER]);
  });

  it("removing an address that is not a signer is refused naming SignerNotFound", async () => {
    const error = await cliFailure(["remove-signer", newSigner, "--deployments", f.dir], f.env());
    assert.equal(error.message, `removeSigner reverted: SignerNotFound(${newSigner})`);
    assert.deepEqual(await signers(), [SIGNER]);
  });

  it("removing the last signer leaves an empty set, which status points out", async () => {
    await cliOk(["remove-signer", SIGNER, "--deployments", f.dir], f.env());
    assert.deepEqual(await signers(), []);
    assert.equal(await isPaymasterSigner(f.client, f.paymaster, SIGNER), false);
    const { output } = await cliOk(["status", "--deployments", f.dir], { RPC_URL: f.chain.anvil.rpcUrl });
    assert.match(output, /^signers {6}\(none: nothing can be sponsored\)$/m);
  });

  it("add-signer with something that is not an address is refused", async () => {
    const error = await cliFailure(["add-signer", "alice", "--deployments", f.dir], f.env());
    assert.equal(error.message, "signer is not an address: alice");
  });
});

describe("paymaster owner commands with a key that is not the owner's", () => {
  const f = useLocalChain();
  const to = freshAddress();
  const commands: string[][] = [
    ["withdraw", to, "0.1"],
    ["stake", "0.1"],
    ["unlock"],
    ["withdraw-stake", to],
    ["add-signer", to],
    ["remove-signer", SIGNER],
  ];

  for (const command of commands) {
    it(`${command[0]} is refused naming the key's address and the owner's, and nothing changes`, async () => {
      const before = await readPaymasterStatus(f.client, f.paymaster);
      const nonce = await f.client.getTransactionCount({ address: OTHER });
      const error = await cliFailure([...command, "--deployments", f.dir], f.env(OTHER_KEY));
      assert.equal(error.name, "OperatorError");
      assert.equal(error.message, `the key's address ${OTHER} is not the paymaster's owner ${OWNER}`);
      assert.deepEqual(await readPaymasterStatus(f.client, f.paymaster), before);
      assert.equal(await f.client.getTransactionCount({ address: OTHER }), nonce);
      assert.equal(await f.client.getBalance({ address: to }), 0n);
    });
  }
});

describe("paymaster usage and configuration errors", () => {
  const f = useLocalChain();
  /** Arguments are checked before the network: these fail the same even with an RPC that cannot be reached. */
  const offline: Env = { RPC_URL: "http://127.0.0.1:1", OPERATOR_PRIVATE_KEY: DEV_KEYS.owner };

  it("without a command, prints the usage and exits 2; with --help, exits 0", async () => {
    const none = await cli([], offline);
    assert.equal(none.code, 2);
    assert.match(none.output, /^usage: npm run paymaster -- <command>/);
    const help = await cli(["--help"], offline);
    assert.equal(help.code, 0);
    assert.match(help.output, /^usage: npm run paymaster -- <command>/);
  });

  it("an unknown command is a usage error naming it", async () => {
    const error = await cliFailure(["frobnicate"], offline);
    assert.equal(error.name, "UsageError");
    assert.match(error.message, /^unknown command "frobnicate"\nusage: /);
  });

  it("a wrong number of arguments is a usage error saying how many the command takes", async () => {
    const cases: [string[], string][] = [
      [["deposit"], "deposit takes 1 argument(s), got 0"],
      [["withdraw", OWNER], "withdraw takes 2 argument(s), got 1"],
      [["status", "now"], "status takes 0 argument(s), got 1"],
      [["unlock", "1"], "unlock takes 0 argument(s), got 1"],
      [["add-signer", SIGNER, SIGNER], "add-signer takes 1 argument(s), got 2"],
    ];
    for (const [argv, message] of cases) {
      const error = await cliFailure(argv, offline);
      assert.equal(error.name, "UsageError");
      assert.equal(error.message.split("\n")[0], message);
      assert.match(error.message, /\nusage: npm run paymaster/);
    }
  });

  it("an unknown option, or --unstake-delay on a command other than stake, is a usage error", async () => {
    const unknown = await cliFailure(["status", "--bogus"], offline);
    assert.match(unknown.message, /^Unknown option '--bogus'/);
    const misplaced = await cliFailure(["deposit", "1", "--unstake-delay", "60"], offline);
    assert.equal(misplaced.message, "--unstake-delay only applies to stake");
  });

  it("a bad amount such as abc, -1 or 1e18 is refused saying what an amount looks like, before connecting", async () => {
    const cases: [string[], string][] = [
      [["deposit", "abc"], "amount must be an amount in ETH like 0.5: got abc"],
      [["deposit", "1e18"], "amount must be an amount in ETH like 0.5: got 1e18"],
      [["deposit", "0.0000000000000000001"], "amount must be an amount in ETH like 0.5: got 0.0000000000000000001"],
      [["withdraw", OWNER, "1,5"], "amount must be an amount in ETH like 0.5: got 1,5"],
      [["stake", ""], "amount must be an amount in ETH like 0.5: got "],
      [["deposit", "-1"], "-1 is negative: amounts are positive ETH values like 0.5"],
      [["withdraw", OWNER, "-0.5"], "-0.5 is negative: amounts are positive ETH values like 0.5"],
      [["stake", "1", "--unstake-delay", "1.5"], "--unstake-delay must be a whole number of seconds: got 1.5"],
    ];
    for (const [argv, message] of cases) {
      const error = await cliFailure(argv, offline);
      assert.equal(error.name, "UsageError", `${argv.join(" ")}: ${error.message}`);
      assert.equal(error.message, message);
    }
  });

  it("a malformed recipient, signer or --paymaster address is refused naming it, before connecting", async () => {
    const cases: [string[], string][] = [
      [["withdraw", "0x12", "1"], "recipient is not an address: 0x12"],
      [["withdraw-stake", "bob"], "recipient is not an address: bob"],
      [["add-signer", `${SIGNER}00`], `signer is not an address: ${SIGNER}00`],
      [["remove-signer", "0x"], "signer is not an address: 0x"],
      [["status", "--paymaster", "0xabc"], "--paymaster is not an address: 0xabc"],
    ];
    for (const [argv, message] of cases) {
      const error = await cliFailure(argv, offline);
      assert.equal(error.name, "UsageError", `${argv.join(" ")}: ${error.message}`);
      assert.equal(error.message, message);
    }
  });

  it("a bad amount sends nothing on a live chain either", async () => {
    const before = await readDepositInfo(f.client, f.paymaster);
    const nonce = await f.client.getTransactionCount({ address: OWNER });
    for (const amount of ["abc", "-1"]) {
      await cliFailure(["deposit", amount, "--deployments", f.dir], f.env());
      await cliFailure(["withdraw", OWNER, amount, "--deployments", f.dir], f.env());
    }
    assert.deepEqual(await readDepositInfo(f.client, f.paymaster), before);
    assert.equal(await f.client.getTransactionCount({ address: OWNER }), nonce);
  });

  it("a write command without OPERATOR_PRIVATE_KEY is refused naming the variable", async () => {
    const error = await cliFailure(["deposit", "1", "--deployments", f.dir], { RPC_URL: f.chain.anvil.rpcUrl });
    assert.equal(error.message, "deposit needs OPERATOR_PRIVATE_KEY (or OPERATOR_PRIVATE_KEY_FILE)");
  });

  it("a malformed OPERATOR_PRIVATE_KEY is refused without echoing it", async () => {
    const key = `${DEV_KEYS.owner.slice(0, -1)}z`;
    const error = await cliFailure(["deposit", "1", "--deployments", f.dir], { RPC_URL: f.chain.anvil.rpcUrl, OPERATOR_PRIVATE_KEY: key });
    assert.equal(error.message, "OPERATOR_PRIVATE_KEY is not a 32-byte hex private key");
  });

  it("an unreachable RPC URL is refused saying it cannot reach the RPC", async () => {
    for (const argv of [["status"], ["deposit", "1"]]) {
      const error = await cliFailure(argv, offline);
      assert.equal(error.name, "UsageError");
      assert.match(error.message, /^cannot reach the RPC at http:\/\/127\.0\.0\.1:1: /);
    }
  });

  it("without RPC_URL, says to set it", async () => {
    const error = await cliFailure(["status"], {});
    assert.match(error.message, /^RPC_URL is not set/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
