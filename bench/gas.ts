/**
 * Gas benchmark: FiatPaymaster against eth-infinitism's sample VerifyingPaymaster (@account-abstraction/contracts
 * 0.7.0), side by side on one local anvil, for the same UserOperation (a zero-ETH SimpleAccount calling
 * Counter.increment):
 *
 *   - paymaster validation gas: gasUsed of the `validatePaymasterUserOp` call frame inside a real `handleOps`
 *     transaction, read with anvil's `debug_traceTransaction` callTracer;
 *   - the handleOps transaction's gasUsed (receipt) and the UserOperationEvent's actualGasUsed;
 *   - the size of paymasterAndData (calldata the bundler pays for).
 *
 * Each is measured for an account's first operation (with initCode: the account is deployed) and its second.
 * A benchmark reports; it does not fail when the target is missed. Figures also go to bench/results/gas.json.
 *
 *   npm run bench
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  type Abi,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
  concat,
  encodeAbiParameters,
  encodeFunctionData,
  isAddressEqual,
  parseEther,
  size,
  toFunctionSelector,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { toPackedUserOperation } from "viem/account-abstraction";
import { DEV_KEYS, type LocalChain, localClients, startLocalChain } from "../devtools/chain/localChain";
import type { OperatorWallet } from "../server/chain/operator";
import {
  type SimpleAccount,
  type UserOp,
  buildUserOperation,
  deployCounter,
  handleOps,
  newSimpleAccount,
  paymasterAndData,
  signAsAccount,
  sponsor,
  userOperationEvents,
} from "../devtools/userOperations";
import { ENTRY_POINT_V07 } from "../server/chain/addresses";
import { loadAccountAbstractionArtifact } from "../server/chain/artifacts";

/**
 * The target: FiatPaymaster's validation may cost at most this much more than the sample's. Its one inherent extra
 * is reading the signer set (a cold SLOAD, 2,100) where the sample compares with an immutable.
 */
const TARGET_OVERHEAD = 2_300n;
/** The sample paymaster's EntryPoint deposit: plenty for a handful of operations. */
const SAMPLE_DEPOSIT = parseEther("10");
/** How long the sponsorships stay valid, from the chain's current time. */
const VALIDITY_SECONDS = 3_600n;
const RESULTS_FILE = path.join(__dirname, "results", "gas.json");

const FIAT_NAME = "FiatPaymaster";
const SAMPLE_NAME = "VerifyingPaymaster (sample)";

/** Both paymasters implement IPaymaster, so one selector finds either's validation frame. */
const VALIDATE_SELECTOR = toFunctionSelector(
  "validatePaymasterUserOp((address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes),bytes32,uint256)",
);

type ValidityWindow = { validUntil: number; validAfter: number };

/** A paymaster under test: where it is and how its signer sponsors an operation for it. */
type Paymaster = { name: string; address: Address; sponsor: (op: UserOp) => Promise<UserOp> };

type OperationGas = {
  validationGas: bigint;
  handleOpsGasUsed: bigint;
  actualGasUsed: bigint;
  paymasterAndDataBytes: number;
  transactionHash: Hex;
};

/** An account's first operation (deploys it through initCode) and its second (account already deployed). */
type PaymasterGas = { address: Address; firstOp: OperationGas; secondOp: OperationGas };

type Bench = {
  client: PublicClient;
  chainId: number;
  bundler: OperatorWallet;
  counter: { address: Address; abi: Abi };
};

// ---------------------------------------------------------------------------------------------------------------
// Paymasters

/** FiatPaymaster as startLocalChain deployed it (signer DEV_KEYS.signer), sponsored with the project's helper. */
function fiatPaymaster(chain: LocalChain, signer: LocalAccount, window: ValidityWindow): Paymaster {
  const chainId = chain.anvil.chainId;
  return { name: FIAT_NAME, address: chain.paymaster, sponsor: (op) => sponsor(op, { signer, chainId, ...window }) };
}

/** Deploys the sample VerifyingPaymaster with the same signer and funds its EntryPoint deposit. */
async function deploySamplePaymaster(client: PublicClient, owner: OperatorWallet, signer: Address): Promise<Address> {
  const { abi, bytecode } = loadAccountAbstractionArtifact("VerifyingPaymaster");
  const deployHash = await owner.deployContract({ abi, bytecode, args: [ENTRY_POINT_V07, signer] });
  const { contractAddress } = await client.waitForTransactionReceipt({ hash: deployHash });
  const address = contractAddress!;
  // deposit() is BasePaymaster's: it forwards the value to EntryPoint.depositTo(this)
  const depositHash = await owner.writeContract({ address, abi, functionName: "deposit", value: SAMPLE_DEPOSIT });
  await client.waitForTransactionReceipt({ hash: depositHash });
  return address;
}

/**
 * The sample's paymasterData is abi.encode(uint48 validUntil, uint48 validAfter) ‖ 65-byte signature, signed
 * (EIP-191) over its own getHash. The hash is read from the contract rather than re-implemented here: the sample's
 * field order differs from FiatPaymaster's, and the contract is the authority on it.
 */
function samplePaymaster(client: PublicClient, address: Address, signer: LocalAccount, window: ValidityWindow): Paymaster {
  const { abi } = loadAccountAbstractionArtifact("VerifyingPaymaster");
  const sponsorForSample = async (op: UserOp): Promise<UserOp> => {
    // getHash covers paymasterAndData[20:52] (the paymaster gas limits) only, so the unsigned op will do
    const hash = (await client.readContract({
      address,
      abi,
      functionName: "getHash",
      args: [toPackedUserOperation(op), window.validUntil, window.validAfter],
    })) as Hex;
    const signature = await signer.signMessage({ message: { raw: hash } });
    const timestamps = encodeAbiParameters(
      [{ type: "uint48" }, { type: "uint48" }],
      [window.validUntil, window.validAfter],
    );
    return { ...op, paymasterData: concat([timestamps, signature]) };
  };
  return { name: SAMPLE_NAME, address, sponsor: sponsorForSample };
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring

/** A callTracer frame; the fields this benchmark reads. */
type CallFrame = { to?: Address; input: Hex; gasUsed: Hex; calls?: CallFrame[] };

function* allFrames(frame: CallFrame): Generator<CallFrame> {
  yield frame;
  for (const call of frame.calls ?? []) yield* allFrames(call);
}

/** gasUsed of the paymaster's validatePaymasterUserOp frame in a one-operation handleOps transaction. */
async function paymasterValidationGas(client: PublicClient, transactionHash: Hex, paymaster: Address): Promise<bigint> {
  const trace = await client.request<{ Parameters: [Hex, { tracer: "callTracer" }]; ReturnType: CallFrame }>({
    method: "debug_traceTransaction",
    params: [transactionHash, { tracer: "callTracer" }],
  });
  const frames = [...allFrames(trace)].filter(
    (f) => f.to !== undefined && isAddressEqual(f.to, paymaster) && f.input.startsWith(VALIDATE_SELECTOR),
  );
  if (frames.length !== 1) {
    throw new Error(`expected one validatePaymasterUserOp frame in ${transactionHash}, found ${frames.length}`);
  }
  return BigInt(frames[0]!.gasUsed);
}

/** Builds, sponsors, signs and submits one Counter.increment operation from `account`; returns its gas figures. */
async function measureOperation(bench: Bench, paymaster: Paymaster, account: SimpleAccount): Promise<OperationGas> {
  const { client, chainId, bundler, counter } = bench;
  const increment = encodeFunctionData({ abi: counter.abi, functionName: "increment" });
  const unsigned = await buildUserOperation(client, account, {
    calls: [{ to: counter.address, data: increment }],
    paymaster: paymaster.address,
  });
  const op = await signAsAccount(account, await paymaster.sponsor(unsigned), chainId);

  const receipt = await handleOps(client, bundler, [op]);
  const [event, ...others] = userOperationEvents(receipt);
  // a reverted call would cost less and skew the comparison, so only a successful operation counts
  if (!event || others.length > 0 || !event.success) {
    throw new Error(`${paymaster.name}: operation in ${receipt.transactionHash} did not succeed`);
  }
  return {
    validationGas: await paymasterValidationGas(client, receipt.transactionHash, paymaster.address),
    handleOpsGasUsed: receipt.gasUsed,
    actualGasUsed: event.actualGasUsed,
    paymasterAndDataBytes: size(paymasterAndData(op)),
    transactionHash: receipt.transactionHash,
  };
}

/** A fresh zero-ETH SimpleAccount's first two operations, both sponsored by `paymaster`. */
async function measurePaymaster(bench: Bench, paymaster: Paymaster): Promise<PaymasterGas> {
  const account = await newSimpleAccount(bench.client);
  const firstOp = await measureOperation(bench, paymaster, account);
  const secondOp = await measureOperation(bench, paymaster, account);
  return { address: paymaster.address, firstOp, secondOp };
}

/** Both sponsorships share one window, so the timestamps cost the same calldata in both. */
async function validityWindow(client: PublicClient): Promise<ValidityWindow> {
  const { timestamp } = await client.getBlock();
  return { validUntil: Number(timestamp + VALIDITY_SECONDS), validAfter: 0 };
}

async function hardfork(client: PublicClient): Promise<string> {
  const info = await client.request<{ Parameters: []; ReturnType: { hardFork: string } }>({
    method: "anvil_nodeInfo",
    params: [],
  });
  return info.hardFork;
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

type Row = { metric: string; fiat: bigint; sample: bigint };

function rows(fiat: PaymasterGas, sample: PaymasterGas): Row[] {
  const row = (metric: string, pick: (g: PaymasterGas) => bigint | number): Row => ({
    metric,
    fiat: BigInt(pick(fiat)),
    sample: BigInt(pick(sample)),
  });
  return [
    row("validation gas, 1st op (initCode)", (g) => g.firstOp.validationGas),
    row("validation gas, 2nd op (deployed)", (g) => g.secondOp.validationGas),
    row("handleOps gasUsed, 1st op", (g) => g.firstOp.handleOpsGasUsed),
    row("handleOps gasUsed, 2nd op", (g) => g.secondOp.handleOpsGasUsed),
    row("actualGasUsed, 1st op", (g) => g.firstOp.actualGasUsed),
    row("actualGasUsed, 2nd op", (g) => g.secondOp.actualGasUsed),
    row("paymasterAndData bytes", (g) => g.firstOp.paymasterAndDataBytes),
  ];
}

const formatGas = (value: bigint): string => value.toLocaleString("en-US");
const formatDifference = (value: bigint): string => (value > 0n ? "+" : "") + formatGas(value);
const formatRatio = (fiat: bigint, sample: bigint): string => (Number(fiat) / Number(sample)).toFixed(3);

function printTable(table: Row[]): void {
  const header = ["metric", FIAT_NAME, SAMPLE_NAME, "difference", "ratio"];
  const lines = table.map((r) => [
    r.metric,
    formatGas(r.fiat),
    formatGas(r.sample),
    formatDifference(r.fiat - r.sample),
    formatRatio(r.fiat, r.sample),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  // the metric column reads left to right; the figures line up on their last digit
  const format = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(format(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const line of lines) console.log(format(line));
}

/** The target holds when FiatPaymaster's validation overhead is within TARGET_OVERHEAD in both cases. */
function targetMet(fiat: PaymasterGas, sample: PaymasterGas): { pass: boolean; overheads: bigint[] } {
  const overheads = [
    fiat.firstOp.validationGas - sample.firstOp.validationGas,
    fiat.secondOp.validationGas - sample.secondOp.validationGas,
  ];
  return { pass: overheads.every((o) => o <= TARGET_OVERHEAD), overheads };
}

/** JSON has no bigint; gas figures are far below 2^53, so numbers are exact. */
function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? Number(v) : v), 2);
}

function writeResults(results: object): void {
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${toJson(results)}\n`);
}

// ---------------------------------------------------------------------------------------------------------------

async function runBench(chain: LocalChain): Promise<void> {
  const { client, owner, anvil } = chain;
  const signer = privateKeyToAccount(DEV_KEYS.signer);
  const bundler = localClients(anvil.rpcUrl, anvil.chainId, DEV_KEYS.bundler).wallet;
  const bench: Bench = { client, chainId: anvil.chainId, bundler, counter: await deployCounter(client, owner) };
  const window = await validityWindow(client);

  const sampleAddress = await deploySamplePaymaster(client, owner, signer.address);
  const fiat = await measurePaymaster(bench, fiatPaymaster(chain, signer, window));
  const sample = await measurePaymaster(bench, samplePaymaster(client, sampleAddress, signer, window));

  const fork = await hardfork(client);
  console.log(`\nPaymaster gas, EntryPoint v0.7 handleOps of one Counter.increment operation (anvil, ${fork})\n`);
  printTable(rows(fiat, sample));
  const { pass, overheads } = targetMet(fiat, sample);
  const overheadText = overheads.map(formatDifference).join(" / ");
  console.log(
    `\nTarget: ${FIAT_NAME} validation gas ≤ sample + ${formatGas(TARGET_OVERHEAD)}: ` +
      `${pass ? "PASS" : "MISS"} (1st / 2nd op: ${overheadText})`,
  );

  writeResults({
    generatedAt: new Date().toISOString(),
    chain: { chainId: anvil.chainId, hardfork: fork, entryPoint: ENTRY_POINT_V07 },
    target: { maxValidationOverhead: TARGET_OVERHEAD, validationOverheads: overheads, pass },
    paymasters: { fiatPaymaster: fiat, verifyingPaymasterSample: sample },
  });
  console.log(`Results written to ${path.relative(process.cwd(), RESULTS_FILE)}`);
}

async function main(): Promise<void> {
  const chain = await startLocalChain();
  try {
    await runBench(chain);
  } finally {
    await chain.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
