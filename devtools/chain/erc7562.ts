/**
 * ERC-7562 validation-rule check of a UserOperation on a chain, the way a bundler in safe mode runs it: the
 * EntryPoint's validation is simulated under the collector tracer (from @pimlico/alto, see ./erc7562/) in
 * `debug_traceCall`, and the trace is checked for banned opcodes, storage access, calls into the EntryPoint,
 * out-of-gas reverts and the rest. anvil runs JavaScript tracers, so this works on the local chain.
 *
 * The v0.7/v0.8/v0.9 EntryPoint has no simulateValidation: as eth-infinitism's reference bundler does, the
 * EntryPointSimulations contract of the same release is put at the EntryPoint's address by a state override
 * (it is written for that: no constructor state, its SenderCreator is the EntryPoint's) and called directly, so
 * the EntryPoint's deposits, stakes and nonces are the chain's.
 *
 * v0.9: npm has only 0.9.0-rc.1, and the canonical EntryPoint at 0x4337…D009 was not built from it (its runtime
 * code differs, the selectors do not). rc.1's EntryPointSimulations works there all the same: it keeps no state
 * in immutables (its SenderCreator is the EntryPoint's first CREATE, which is where the canonical one put its
 * own; its EIP-712 domain separator is rebuilt in storage), it reads the canonical deposits, stakes and nonces,
 * and it calls factory, account and paymaster with exactly the inputs the canonical handleOps gives them —
 * erc7562.test.ts checks all of that against the canonical EntryPoint. Not covered: a 0x7702 initCode with
 * initialization data (initEip7702Sender on the canonical SenderCreator).
 *
 * EIP-7702 senders (v0.8, v0.9): an operation's `authorization` (viem's field: the tuple the bundler's type-4
 * transaction will carry) becomes a state override of the sender's code to the delegation designator
 * 0xef0100 ‖ delegate, so the first operation (0x7702 marker initCode) is traced as it will run; a sender
 * delegated on chain already needs nothing. The ERC-7562 authorization rules are checked: a delegated account may
 * be an operation's sender only (AUTH-020) and no other delegated account may be called or have its code read
 * during validation (AUTH-030). AUTH-010 (one tuple per operation) holds by construction; AUTH-040 is a mempool
 * rule.
 */
import { readFileSync } from "node:fs";
import {
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
  type SignedAuthorization,
  type StateOverride,
  BaseError,
  ContractFunctionRevertedError,
  concat,
  encodeFunctionData,
  getAddress,
  isAddressEqual,
  numberToHex,
  slice,
  zeroAddress,
} from "viem";
import { type PackedUserOperation, type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
import { recoverAuthorizationAddress } from "viem/utils";
import type { EntryPointVersion } from "../../server/chain/addresses";
import { bundlerCollectorTracer } from "./erc7562/bundlerCollectorTracer";
import {
  type BundlerTracerResult,
  type EntityStake,
  type Erc7562Entity,
  type Erc7562Violation,
  findRuleViolations,
  tracedPhase,
} from "./erc7562/validationRules";

export type { Erc7562Entity, Erc7562Violation } from "./erc7562/validationRules";

/** EntryPoint versions whose validation can be traced (same PackedUserOperation, same simulateValidation). */
export type { EntryPointVersion };

/**
 * Where each version's EntryPointSimulations artifact ships (compiled by eth-infinitism, as released; v0.9 is
 * 0.9.0-rc.1, see above).
 */
const ENTRY_POINT_SIMULATIONS: Record<EntryPointVersion, string> = {
  "0.7": "@account-abstraction/contracts/artifacts/EntryPointSimulations.json",
  "0.8": "@account-abstraction/contracts-v08/artifacts/EntryPointSimulations.json",
  "0.9": "@account-abstraction/contracts-v09/artifacts/EntryPointSimulations.json",
};

/** ERC-7562 MIN_UNSTAKE_DELAY. */
export const MIN_UNSTAKE_DELAY_SEC = 86_400n;

/** The EntryPointSimulations frame is the traced call itself. */
const ENTRY_POINT_DEPTH = 1;

/** EIP-7702 marker in the factory field (v0.8), short or padded: the sender is a delegating EOA, no factory runs. */
const EIP7702_FACTORY_MARKER = /^0x7702(0{36})?$/i;

/** EIP-7702 delegation designator: an account whose code is 0xef0100 ‖ delegate runs the delegate's code. */
const DELEGATION_PREFIX: Hex = "0xef0100";
const DELEGATION_CODE_SIZE = 23;

/** The delegate of an EIP-7702 delegated account's code, or undefined for any other code. */
function eip7702DelegateOf(code: Hex | undefined): Address | undefined {
  if (!code || (code.length - 2) / 2 !== DELEGATION_CODE_SIZE || !code.toLowerCase().startsWith(DELEGATION_PREFIX)) return undefined;
  return getAddress(slice(code, 3));
}

export type CheckValidationRulesParameters = {
  client: PublicClient;
  entryPoint: { address: Address; version: EntryPointVersion };
  /**
   * The operation as sent to a bundler, signed (a failing signature does not stop the trace, but changes paths).
   * An EIP-7702 sender's first operation carries its `authorization` (signed by the sender, for its current nonce).
   */
  userOperation: UserOperation<"0.7"> | UserOperation<"0.8"> | UserOperation<"0.9">;
  /** MIN_STAKE_VALUE: chain-specific in ERC-7562 (~$1000 of the native token). Default 1 wei, as alto. */
  minStake?: bigint;
  /** MIN_UNSTAKE_DELAY; default one day, as ERC-7562 (alto takes 1 s). */
  minUnstakeDelaySec?: bigint;
  /** Extra state for the simulation (the sender's delegation comes from `userOperation.authorization`). */
  stateOverride?: StateOverride;
};

/**
 * An entity the operation names, its stake, whether it is staked, and, for an EIP-7702 delegated account, the
 * delegate its code points to (at trace time: the authorization's for a first operation).
 */
export type TracedEntity = EntityStake & { entity: Erc7562Entity; staked: boolean; eip7702Delegate?: Address };

export type CheckValidationRulesReturnType = {
  /** Every rule broken; empty = compliant. */
  violations: Erc7562Violation[];
  /** The entities whose validation phase the trace reached: all the operation names, or an error is thrown. */
  entities: TracedEntity[];
  /** simulateValidation's returnInfo. */
  validation: {
    preOpGas: bigint;
    prefund: bigint;
    accountValidationData: bigint;
    paymasterValidationData: bigint;
    paymasterContext: Hex;
  };
};

export type CheckValidationRulesErrorType = ValidationSimulationError | IncompleteTraceError | InvalidAuthorizationError;

/** The simulated validation reverted (e.g. FailedOp "AA31 paymaster deposit too low"): no rules to check. */
export class ValidationSimulationError extends Error {
  override name = "ValidationSimulationError";
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`simulateValidation reverted: ${reason}`, options);
  }
}

/**
 * The trace stops early or lacks an entity's validation phase, so it cannot vouch for the operation (anvil ends
 * a trace quietly when the tracer throws).
 */
export class IncompleteTraceError extends Error {
  override name = "IncompleteTraceError";
  constructor(
    readonly details: string,
    readonly entity?: Erc7562Entity,
  ) {
    super(entity ? `the trace did not reach the ${entity}'s validation: ${details}` : `the trace is incomplete: ${details}`);
  }
}

/**
 * The operation's EIP-7702 authorization would not delegate its sender in the bundle's type-4 transaction (signed
 * by another key, for another chain or another nonce), so tracing it with the delegation would vouch for an
 * operation that cannot run.
 */
export class InvalidAuthorizationError extends Error {
  override name = "InvalidAuthorizationError";
  constructor(readonly details: string) {
    super(`the operation's EIP-7702 authorization does not delegate its sender: ${details}`);
  }
}

type SimulationArtifact = { abi: Abi; deployedBytecode: Hex };

const artifacts = new Map<EntryPointVersion, SimulationArtifact>();

function entryPointSimulations(version: EntryPointVersion): SimulationArtifact {
  let artifact = artifacts.get(version);
  if (!artifact) {
    artifact = JSON.parse(readFileSync(require.resolve(ENTRY_POINT_SIMULATIONS[version]), "utf8")) as SimulationArtifact;
    artifacts.set(version, artifact);
  }
  return artifact;
}

type StakeInfo = { stake: bigint; unstakeDelaySec: bigint };
type ValidationResult = {
  returnInfo: CheckValidationRulesReturnType["validation"];
  senderInfo: StakeInfo;
  factoryInfo: StakeInfo;
  paymasterInfo: StakeInfo;
};

/** `overrides` with `address`'s code set (merged into an entry for that address if there is one). */
function withCode(overrides: StateOverride, address: Address, code: Hex): StateOverride {
  const existing = overrides.find((o) => isAddressEqual(o.address, address));
  if (!existing) return [...overrides, { address, code }];
  return overrides.map((o) => (o === existing ? { ...o, code } : o));
}

/**
 * The delegate `authorization` names, once it is known to delegate `sender` in this block: signed by the sender,
 * for this chain (or any), for the sender's current nonce. An unsigned authorization is taken at its word.
 */
async function authorizedDelegate(client: PublicClient, sender: Address, authorization: SignedAuthorization, blockNumber: bigint): Promise<Address> {
  const delegate = getAddress(authorization.address);
  if (authorization.r === undefined || authorization.s === undefined) return delegate;
  const signer = await recoverAuthorizationAddress({ authorization });
  if (!isAddressEqual(signer, sender)) throw new InvalidAuthorizationError(`signed by ${signer}, not by the sender ${sender}`);
  const chainId = await client.getChainId();
  if (authorization.chainId !== 0 && authorization.chainId !== chainId) throw new InvalidAuthorizationError(`made for chain ${authorization.chainId}, this is ${chainId}`);
  const nonce = await client.getTransactionCount({ address: sender, blockNumber });
  if (authorization.nonce !== nonce) throw new InvalidAuthorizationError(`made for nonce ${authorization.nonce}, the sender's is ${nonce}`);
  return delegate;
}

/** viem's state override in the JSON-RPC form debug_traceCall takes. */
function rpcStateOverride(overrides: StateOverride): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const { address, balance, nonce, code, state, stateDiff } of overrides) {
    out[address] = {
      ...(code !== undefined ? { code } : {}),
      ...(balance !== undefined ? { balance: numberToHex(balance) } : {}),
      ...(nonce !== undefined ? { nonce: numberToHex(nonce) } : {}),
      ...(state ? { state: Object.fromEntries(state.map((s) => [s.slot, s.value])) } : {}),
      ...(stateDiff ? { stateDiff: Object.fromEntries(stateDiff.map((s) => [s.slot, s.value])) } : {}),
    };
  }
  return out;
}

async function simulateValidation(
  client: PublicClient,
  abi: Abi,
  entryPoint: Address,
  packed: PackedUserOperation,
  stateOverride: StateOverride,
  blockNumber: bigint,
): Promise<ValidationResult> {
  try {
    const { result } = await client.simulateContract({
      address: entryPoint,
      abi,
      functionName: "simulateValidation",
      args: [packed],
      stateOverride,
      blockNumber,
    });
    return result as ValidationResult;
  } catch (error) {
    const revert = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (revert instanceof ContractFunctionRevertedError) {
      const decoded = revert.data;
      const reason = decoded ? `${decoded.errorName}(${(decoded.args ?? []).map(String).join(", ")})` : (revert.reason ?? revert.shortMessage);
      throw new ValidationSimulationError(reason, { cause: error });
    }
    throw error;
  }
}

/**
 * Traces the EntryPoint's validation of `userOperation` and checks it against the ERC-7562 rules.
 * Throws ValidationSimulationError if the validation reverts, IncompleteTraceError if the trace stops early or
 * misses an entity the operation names.
 */
export async function checkValidationRules(parameters: CheckValidationRulesParameters): Promise<CheckValidationRulesReturnType> {
  const { client, userOperation } = parameters;
  const entryPoint = getAddress(parameters.entryPoint.address);
  const { abi, deployedBytecode } = entryPointSimulations(parameters.entryPoint.version);
  const minStake = parameters.minStake ?? 1n;
  const minUnstakeDelaySec = parameters.minUnstakeDelaySec ?? MIN_UNSTAKE_DELAY_SEC;
  const isStaked = (s: EntityStake) => s.stake >= minStake && s.unstakeDelaySec >= minUnstakeDelaySec;

  const sender = getAddress(userOperation.sender);
  const packed = toPackedUserOperation(userOperation);
  const data = encodeFunctionData({ abi, functionName: "simulateValidation", args: [packed] });
  // all calls see the same state: the head as it is now — viem's cached block number (kept for the client's
  // polling interval) can be one read before the transaction that just deployed the sender, and the simulation
  // then fails with AA20 "account not deployed" although every other read saw the account
  const blockNumber = await client.getBlockNumber({ cacheTime: 0 });
  let stateOverride = withCode(parameters.stateOverride ?? [], entryPoint, deployedBytecode);
  const authorization = "authorization" in userOperation ? userOperation.authorization : undefined;
  if (authorization) {
    const delegate = await authorizedDelegate(client, sender, authorization, blockNumber);
    stateOverride = withCode(stateOverride, sender, concat([DELEGATION_PREFIX, delegate]));
  }

  const result = await simulateValidation(client, abi, entryPoint, packed, stateOverride, blockNumber);
  const tracerResult = (await client.request({
    method: "debug_traceCall",
    params: [
      { from: zeroAddress, to: entryPoint, data },
      numberToHex(blockNumber),
      { tracer: bundlerCollectorTracer(ENTRY_POINT_DEPTH), stateOverrides: rpcStateOverride(stateOverride) },
    ],
  } as never)) as BundlerTracerResult;

  // v0.9 ignores the initCode of a sender that exists (v0.7/v0.8 refuse it, AA10): its factory does not run
  const senderExists = (await codeAt(client, sender, stateOverride, blockNumber)) !== undefined;
  const factory = userOperation.factory && !EIP7702_FACTORY_MARKER.test(userOperation.factory) && !senderExists ? getAddress(userOperation.factory) : undefined;
  const paymaster = userOperation.paymaster ? getAddress(userOperation.paymaster) : undefined;
  const stakeOf = (address: Address, info: StakeInfo): EntityStake => ({ address, stake: info.stake, unstakeDelaySec: info.unstakeDelaySec });
  const stakes = {
    account: stakeOf(sender, result.senderInfo),
    ...(factory ? { factory: stakeOf(factory, result.factoryInfo) } : {}),
    ...(paymaster ? { paymaster: stakeOf(paymaster, result.paymasterInfo) } : {}),
  };

  // the tracer records the EntryPoint's own RETURN last: without it the tracer died on the way
  const last = tracerResult.calls.at(-1);
  if (last?.type !== "RETURN") throw new IncompleteTraceError(`it ends with ${last ? last.type : "nothing"}, not simulateValidation's RETURN`);

  const delegates = await eip7702Delegates(client, [...Object.values(stakes).map((s) => s.address), ...touchedAddresses(tracerResult)], stateOverride, blockNumber);
  const entities: TracedEntity[] = [];
  for (const entity of ["factory", "account", "paymaster"] as const) {
    const stake = stakes[entity];
    if (!stake) continue;
    const phase = tracedPhase(tracerResult, entity);
    if (!phase) throw new IncompleteTraceError(`no call from the EntryPoint with its validation's selector (${tracerResult.callsFromEntryPoint.length} calls traced)`, entity);
    // the factory is called through the EntryPoint's SenderCreator; the others directly
    if (entity !== "factory" && getAddress(phase.topLevelTargetAddress) !== stake.address) {
      throw new IncompleteTraceError(`the EntryPoint called ${phase.topLevelTargetAddress}, not ${stake.address}`, entity);
    }
    const eip7702Delegate = delegates.get(stake.address.toLowerCase());
    entities.push({ entity, ...stake, staked: isStaked(stake), ...(eip7702Delegate ? { eip7702Delegate } : {}) });
  }

  const violations = findRuleViolations({
    tracerResult,
    entryPoint,
    sender,
    stakes,
    paymasterContext: result.returnInfo.paymasterContext,
    isStaked,
    eip7702Delegates: delegates,
  });
  return { violations, entities, validation: result.returnInfo };
}

/** Every address an entity's validation called or read the code of (precompiles 0x01…0x09 aside). */
function touchedAddresses(tracerResult: BundlerTracerResult): Address[] {
  const touched = new Set<string>();
  for (const phase of tracerResult.callsFromEntryPoint) {
    if (!phase) continue;
    for (const address of [...Object.keys(phase.contractSize), ...Object.keys(phase.extCodeAccessInfo)]) touched.add(address.toLowerCase());
  }
  return [...touched].map((address) => getAddress(address));
}

/**
 * The EIP-7702 delegate of each of `addresses` that is a delegated account at trace time (the state override's
 * code first, else the chain's), keyed by lower-case address.
 */
async function eip7702Delegates(client: PublicClient, addresses: Address[], stateOverride: StateOverride, blockNumber: bigint): Promise<Map<string, Address>> {
  const unique = [...new Set(addresses.map((a) => a.toLowerCase()))];
  const codes = await Promise.all(unique.map((address) => codeAt(client, address as Address, stateOverride, blockNumber)));
  const delegates = new Map<string, Address>();
  unique.forEach((address, i) => {
    const delegate = eip7702DelegateOf(codes[i]);
    if (delegate) delegates.set(address, delegate);
  });
  return delegates;
}

/** `address`'s code at trace time: the state override's, else the chain's; undefined when it has none. */
async function codeAt(client: PublicClient, address: Address, stateOverride: StateOverride, blockNumber: bigint): Promise<Hex | undefined> {
  const override = stateOverride.find((o) => o.code !== undefined && isAddressEqual(o.address, address));
  const code = override ? override.code : await client.getCode({ address, blockNumber });
  return code && code !== "0x" ? code : undefined;
}
