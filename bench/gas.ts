/**
 * Gas benchmark: each EntryPoint version's paymaster against eth-infinitism's sample VerifyingPaymaster for that
 * version, side by side on one local anvil, for the same UserOperation (a zero-ETH account calling
 * Counter.increment):
 *
 *   - v0.7: FiatPaymaster against the sample as @account-abstraction/contracts 0.7.0 ships it, compiled;
 *   - v0.8: FiatPaymasterV08 against the sample of eth-infinitism/account-abstraction-samples (the samples left the
 *     main repository with v0.8), vendored as contracts/test/VerifyingPaymasterV08.sol;
 *   - v0.9: FiatPaymasterV09 against that same sample on v0.9's BasePaymaster (contracts/test/VerifyingPaymasterV09.sol):
 *     eth-infinitism publishes none for v0.9.
 *
 * Measured for each:
 *
 *   - paymaster validation gas: gasUsed of the `validatePaymasterUserOp` call frame inside a real `handleOps`
 *     transaction, read with anvil's `debug_traceTransaction` callTracer;
 *   - the handleOps transaction's gasUsed (receipt) and the UserOperationEvent's actualGasUsed;
 *   - the size of paymasterAndData (calldata the bundler pays for).
 *
 * Each is measured for a SimpleAccount's first operation (with initCode: the account is deployed) and its second,
 * and on v0.8 also for an EIP-7702 EOA's first (the 0x7702 initCode marker, with the type-4 authorization that
 * delegates it to Simple7702Account). A benchmark reports; it does not fail when a target is missed. Figures also go
 * to bench/results/gas.json.
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
  type TransactionReceipt,
  concat,
  encodeAbiParameters,
  encodeFunctionData,
  isAddressEqual,
  parseEther,
  size,
  toFunctionSelector,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
import { DEV_KEYS, type LocalChain, localClients, startLocalChain } from "../devtools/chain/localChain";
import type { OperatorWallet } from "../server/chain/operator";
import {
  type BuildParameters,
  ENTRY_POINTS,
  type Eip7702EntryPointVersion,
  type SimpleAccount,
  type UserOp,
  type UserOpV08V09,
  type VersionedAccount,
  buildUserOperation,
  buildVersionedUserOperation,
  deployCounter,
  eip7702AuthorizationFor,
  handleOps,
  newEip7702Account,
  newSimpleAccount,
  newVersionedSimpleAccount,
  signAsAccount,
  signAsVersionedAccount,
  sponsor,
  sponsorV08,
  sponsorV09,
  submitOperations,
  userOperationEventsAt,
} from "../devtools/userOperations";
import { CANONICAL_ENTRY_POINTS, type EntryPointVersion } from "../server/chain/addresses";
import {
  type ContractArtifact,
  FIAT_PAYMASTER_CONTRACTS,
  loadAccountAbstractionArtifact,
  loadProjectArtifact,
} from "../server/chain/artifacts";

/**
 * The target: the project's paymaster's validation may cost at most this much more than the sample's. Its one
 * inherent extra is reading the signer set (a cold SLOAD, 2,100) where the sample compares with an immutable.
 */
const TARGET_OVERHEAD = 2_300n;
/** The sample paymaster's EntryPoint deposit: plenty for a handful of operations. */
const SAMPLE_DEPOSIT = parseEther("10");
/** How long the sponsorships stay valid, from the chain's current time. */
const VALIDITY_SECONDS = 3_600n;
const RESULTS_FILE = path.join(__dirname, "results", "gas.json");

const SAMPLE_NAME = "VerifyingPaymaster (sample)";

/** Each version's sample VerifyingPaymaster: where its code comes from, and its compiled form. */
const SAMPLES: Record<EntryPointVersion, { source: string; artifact: () => ContractArtifact }> = {
  "0.7": {
    source: "@account-abstraction/contracts 0.7.0, samples/VerifyingPaymaster.sol (npm artifact)",
    artifact: () => loadAccountAbstractionArtifact("VerifyingPaymaster"),
  },
  "0.8": {
    source: "eth-infinitism/account-abstraction-samples@3c4c09d7 contracts/VerifyingPaymaster.sol (contracts/test/VerifyingPaymasterV08.sol)",
    artifact: () => loadProjectArtifact("test/VerifyingPaymasterV08.sol", "VerifyingPaymaster"),
  },
  "0.9": {
    source: "eth-infinitism/account-abstraction-samples@3c4c09d7 contracts/VerifyingPaymaster.sol on v0.9's BasePaymaster (contracts/test/VerifyingPaymasterV09.sol)",
    artifact: () => loadProjectArtifact("test/VerifyingPaymasterV09.sol", "VerifyingPaymaster"),
  },
};

/** Every version's paymasters implement the same IPaymaster, so one selector finds either's validation frame. */
const VALIDATE_SELECTOR = toFunctionSelector(
  "validatePaymasterUserOp((address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes),bytes32,uint256)",
);

type ValidityWindow = { validUntil: number; validAfter: number };

/** A paymaster under test: where it is and how its signer sponsors an operation from `account` for it. */
type Paymaster<Op, Account> = { name: string; address: Address; sponsor: (op: Op, account: Account) => Promise<Op> };

/** The accounts measured: a SimpleAccount's first two operations; where supported, an EIP-7702 EOA's first. */
type AccountKind = "simpleAccount" | "eip7702";

/**
 * One EntryPoint version under test: its two paymasters, and how an account of each kind is made there and builds,
 * signs and submits an operation.
 */
type EntryPointUnderTest<Op extends UserOperation, Account> = {
  version: EntryPointVersion;
  fiat: Paymaster<Op, Account>;
  sample: Paymaster<Op, Account>;
  measuresEip7702: boolean;
  newAccount: (kind: AccountKind) => Promise<Account>;
  build: (account: Account, p: BuildParameters) => Promise<Op>;
  sign: (account: Account, op: Op) => Promise<Op>;
  submit: (account: Account, op: Op) => Promise<TransactionReceipt>;
};

type OperationGas = {
  validationGas: bigint;
  handleOpsGasUsed: bigint;
  actualGasUsed: bigint;
  paymasterAndDataBytes: number;
  transactionHash: Hex;
};

/**
 * A SimpleAccount's first operation (deploys it through initCode) and its second (account already deployed); where
 * measured, an EIP-7702 EOA's first (marker initCode, authorization in the same transaction).
 */
type PaymasterGas = { address: Address; firstOp: OperationGas; secondOp: OperationGas; eip7702FirstOp?: OperationGas };

type Bench = {
  chain: LocalChain;
  chainId: number;
  bundler: OperatorWallet;
  signer: LocalAccount;
  window: ValidityWindow;
  counter: { address: Address; abi: Abi };
};

// ---------------------------------------------------------------------------------------------------------------
// Paymasters

/** Deploys a sample VerifyingPaymaster for `entryPoint` with the given signer and funds its EntryPoint deposit. */
async function deploySamplePaymaster(bench: Bench, version: EntryPointVersion): Promise<Address> {
  const { client, owner } = bench.chain;
  const { abi, bytecode } = SAMPLES[version].artifact();
  const args = [CANONICAL_ENTRY_POINTS[version], bench.signer.address];
  const deployHash = await owner.deployContract({ abi, bytecode, args });
  const { contractAddress } = await client.waitForTransactionReceipt({ hash: deployHash });
  const address = contractAddress!;
  // deposit() is BasePaymaster's: it forwards the value to EntryPoint.depositTo(this)
  const depositHash = await owner.writeContract({ address, abi, functionName: "deposit", value: SAMPLE_DEPOSIT });
  await client.waitForTransactionReceipt({ hash: depositHash });
  return address;
}

/**
 * The sample's paymasterData is abi.encode(uint48 validUntil, uint48 validAfter) ‖ 65-byte signature, signed
 * (EIP-191) over its own getHash, on every version. The hash is read from the contract rather than re-implemented
 * here: the sample's field order differs from FiatPaymaster's, and the contract is the authority on it.
 */
async function samplePaymaster<Op extends UserOperation, Account>(bench: Bench, version: EntryPointVersion): Promise<Paymaster<Op, Account>> {
  const { client } = bench.chain;
  const { signer, window } = bench;
  const { abi } = SAMPLES[version].artifact();
  const address = await deploySamplePaymaster(bench, version);
  const sponsorForSample = async (op: Op): Promise<Op> => {
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
// EntryPoint versions

/** v0.7: FiatPaymaster as startLocalChain deployed it (signer DEV_KEYS.signer), permissionless SimpleAccounts. */
async function entryPointV07(bench: Bench): Promise<EntryPointUnderTest<UserOp, SimpleAccount>> {
  const { chain, chainId, bundler, signer, window } = bench;
  // the sample is deployed first, as it always was, so the v0.7 figures keep their addresses and calldata
  const sample = await samplePaymaster<UserOp, SimpleAccount>(bench, "0.7");
  return {
    version: "0.7",
    fiat: { name: FIAT_PAYMASTER_CONTRACTS["0.7"], address: chain.paymaster, sponsor: (op) => sponsor(op, { signer, chainId, ...window }) },
    sample,
    measuresEip7702: false,
    newAccount: () => newSimpleAccount(chain.client),
    build: (account, p) => buildUserOperation(chain.client, account, p),
    sign: (account, op) => signAsAccount(account, op, chainId),
    submit: (_account, op) => handleOps(chain.client, bundler, [op]),
  };
}

/**
 * v0.8 and v0.9: the version's FiatPaymaster, SimpleAccounts (and on v0.8 EIP-7702 EOAs), operations sent with
 * `submitOperations` (the authorization in a type-4 transaction). FiatPaymasterV08 signs over its getHash with
 * the 7702 delegate; FiatPaymasterV09 signs the userOpHash as paymasterSignature.
 */
async function entryPointV08V09(bench: Bench, version: Eip7702EntryPointVersion): Promise<EntryPointUnderTest<UserOpV08V09, VersionedAccount>> {
  const { chain, chainId, bundler, signer, window } = bench;
  const sponsorForFiat =
    version === "0.8"
      ? (op: UserOpV08V09) => sponsorV08(op, { signer, chainId, ...window })
      : (op: UserOpV08V09, account: VersionedAccount) => sponsorV09(account, op, { signer, chainId, ...window });
  return {
    version,
    fiat: { name: FIAT_PAYMASTER_CONTRACTS[version], address: chain.paymasters[version], sponsor: sponsorForFiat },
    sample: await samplePaymaster<UserOpV08V09, VersionedAccount>(bench, version),
    measuresEip7702: version === "0.8",
    newAccount: (kind) =>
      kind === "eip7702" ? newEip7702Account(chain.client, version) : newVersionedSimpleAccount(chain.client, version),
    build: (account, p) => buildVersionedUserOperation(chain.client, account, p),
    sign: (account, op) => signAsVersionedAccount(chainId, account, op),
    submit: async (account, op) => {
      const authorization = await eip7702AuthorizationFor(chain.client, chainId, account);
      return submitOperations(chain.client, bundler, ENTRY_POINTS[version], [op], authorization ? [authorization] : undefined);
    },
  };
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
async function measureOperation<Op extends UserOperation, Account>(
  bench: Bench,
  entryPoint: EntryPointUnderTest<Op, Account>,
  paymaster: Paymaster<Op, Account>,
  account: Account,
): Promise<OperationGas> {
  const { client } = bench.chain;
  const increment = encodeFunctionData({ abi: bench.counter.abi, functionName: "increment" });
  const unsigned = await entryPoint.build(account, {
    calls: [{ to: bench.counter.address, data: increment }],
    paymaster: paymaster.address,
  });
  const op = await entryPoint.sign(account, await paymaster.sponsor(unsigned, account));

  const receipt = await entryPoint.submit(account, op);
  const [event, ...others] = userOperationEventsAt(receipt, ENTRY_POINTS[entryPoint.version]);
  // a reverted call would cost less and skew the comparison, so only a successful operation counts
  if (!event || others.length > 0 || !event.success) {
    throw new Error(`${paymaster.name}: operation in ${receipt.transactionHash} did not succeed`);
  }
  return {
    validationGas: await paymasterValidationGas(client, receipt.transactionHash, paymaster.address),
    handleOpsGasUsed: receipt.gasUsed,
    actualGasUsed: event.actualGasUsed,
    paymasterAndDataBytes: size(toPackedUserOperation(op).paymasterAndData),
    transactionHash: receipt.transactionHash,
  };
}

/** A fresh zero-ETH SimpleAccount's first two operations, and an EIP-7702 EOA's first, sponsored by `paymaster`. */
async function measurePaymaster<Op extends UserOperation, Account>(
  bench: Bench,
  entryPoint: EntryPointUnderTest<Op, Account>,
  paymaster: Paymaster<Op, Account>,
): Promise<PaymasterGas> {
  const account = await entryPoint.newAccount("simpleAccount");
  const firstOp = await measureOperation(bench, entryPoint, paymaster, account);
  const secondOp = await measureOperation(bench, entryPoint, paymaster, account);
  if (!entryPoint.measuresEip7702) return { address: paymaster.address, firstOp, secondOp };
  const eip7702FirstOp = await measureOperation(bench, entryPoint, paymaster, await entryPoint.newAccount("eip7702"));
  return { address: paymaster.address, firstOp, secondOp, eip7702FirstOp };
}

/** All sponsorships share one window, so the timestamps cost the same calldata in all. */
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
  const eip7702 = fiat.eip7702FirstOp !== undefined && sample.eip7702FirstOp !== undefined;
  const eip7702Row = (metric: string, pick: (g: OperationGas) => bigint | number): Row[] =>
    eip7702 ? [row(metric, (g) => pick(g.eip7702FirstOp!))] : [];
  return [
    row("validation gas, 1st op (initCode)", (g) => g.firstOp.validationGas),
    row("validation gas, 2nd op (deployed)", (g) => g.secondOp.validationGas),
    ...eip7702Row("validation gas, EIP-7702 1st op (marker + auth)", (g) => g.validationGas),
    row("handleOps gasUsed, 1st op", (g) => g.firstOp.handleOpsGasUsed),
    row("handleOps gasUsed, 2nd op", (g) => g.secondOp.handleOpsGasUsed),
    ...eip7702Row("handleOps gasUsed, EIP-7702 1st op", (g) => g.handleOpsGasUsed),
    row("actualGasUsed, 1st op", (g) => g.firstOp.actualGasUsed),
    row("actualGasUsed, 2nd op", (g) => g.secondOp.actualGasUsed),
    ...eip7702Row("actualGasUsed, EIP-7702 1st op", (g) => g.actualGasUsed),
    row("paymasterAndData bytes", (g) => g.firstOp.paymasterAndDataBytes),
  ];
}

const formatGas = (value: bigint): string => value.toLocaleString("en-US");
const formatDifference = (value: bigint): string => (value > 0n ? "+" : "") + formatGas(value);
const formatRatio = (fiat: bigint, sample: bigint): string => (Number(fiat) / Number(sample)).toFixed(3);

function printTable(fiatName: string, table: Row[]): void {
  const header = ["metric", fiatName, SAMPLE_NAME, "difference", "ratio"];
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

type Target = { pass: boolean; operations: string[]; overheads: bigint[] };

/** The target holds when the paymaster's validation overhead is within TARGET_OVERHEAD for every operation measured. */
function targetMet(fiat: PaymasterGas, sample: PaymasterGas): Target {
  const operations = ["1st", "2nd"];
  const overheads = [
    fiat.firstOp.validationGas - sample.firstOp.validationGas,
    fiat.secondOp.validationGas - sample.secondOp.validationGas,
  ];
  if (fiat.eip7702FirstOp && sample.eip7702FirstOp) {
    operations.push("EIP-7702 1st");
    overheads.push(fiat.eip7702FirstOp.validationGas - sample.eip7702FirstOp.validationGas);
  }
  return { pass: overheads.every((o) => o <= TARGET_OVERHEAD), operations, overheads };
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

/** Measures one version's two paymasters, prints its table and target line, and returns its results. */
async function benchEntryPoint<Op extends UserOperation, Account>(
  bench: Bench,
  entryPoint: EntryPointUnderTest<Op, Account>,
  fork: string,
): Promise<object> {
  const fiat = await measurePaymaster(bench, entryPoint, entryPoint.fiat);
  const sample = await measurePaymaster(bench, entryPoint, entryPoint.sample);

  const { version } = entryPoint;
  console.log(`\nPaymaster gas, EntryPoint v${version} handleOps of one Counter.increment operation (anvil, ${fork})\n`);
  printTable(entryPoint.fiat.name, rows(fiat, sample));
  const target = targetMet(fiat, sample);
  const overheadText = target.overheads.map(formatDifference).join(" / ");
  console.log(
    `\nTarget: ${entryPoint.fiat.name} validation gas ≤ sample + ${formatGas(TARGET_OVERHEAD)}: ` +
      `${target.pass ? "PASS" : "MISS"} (${target.operations.join(" / ")} op: ${overheadText})`,
  );
  return {
    entryPoint: CANONICAL_ENTRY_POINTS[version],
    fiatPaymasterContract: entryPoint.fiat.name,
    sample: SAMPLES[version].source,
    target: {
      maxValidationOverhead: TARGET_OVERHEAD,
      operations: target.operations,
      validationOverheads: target.overheads,
      pass: target.pass,
    },
    paymasters: { fiatPaymaster: fiat, verifyingPaymasterSample: sample },
  };
}

async function runBench(chain: LocalChain): Promise<void> {
  const { client, owner, anvil } = chain;
  const bench: Bench = {
    chain,
    chainId: anvil.chainId,
    bundler: localClients(anvil.rpcUrl, anvil.chainId, DEV_KEYS.bundler).wallet,
    signer: privateKeyToAccount(DEV_KEYS.signer),
    counter: await deployCounter(client, owner),
    window: await validityWindow(client),
  };
  const fork = await hardfork(client);

  // one version after the other, each sample deployed just before it is measured
  const entryPoints = {
    "0.7": await benchEntryPoint(bench, await entryPointV07(bench), fork),
    "0.8": await benchEntryPoint(bench, await entryPointV08V09(bench, "0.8"), fork),
    "0.9": await benchEntryPoint(bench, await entryPointV08V09(bench, "0.9"), fork),
  };

  writeResults({
    generatedAt: new Date().toISOString(),
    chain: { chainId: anvil.chainId, hardfork: fork },
    entryPoints,
  });
  console.log(`\nResults written to ${path.relative(process.cwd(), RESULTS_FILE)}`);
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
