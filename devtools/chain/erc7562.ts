/**
 * ERC-7562 validation-rule check of a UserOperation on a chain, the way a bundler in safe mode runs it: the
 * EntryPoint's validation is simulated under the collector tracer (from @pimlico/alto, see ./erc7562/) in
 * `debug_traceCall`, and the trace is checked for banned opcodes, storage access, calls into the EntryPoint,
 * out-of-gas reverts and the rest. anvil runs JavaScript tracers, so this works on the local chain.
 *
 * The v0.7/v0.8 EntryPoint has no simulateValidation: as eth-infinitism's reference bundler does, the
 * EntryPointSimulations contract of the same release is put at the EntryPoint's address by a state override
 * (it is written for that: no constructor state, its SenderCreator is the EntryPoint's) and called directly, so
 * the EntryPoint's deposits, stakes and nonces are the chain's.
 */
import { readFileSync } from "node:fs";
import {
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
  type StateOverride,
  BaseError,
  ContractFunctionRevertedError,
  encodeFunctionData,
  getAddress,
  numberToHex,
  zeroAddress,
} from "viem";
import { type PackedUserOperation, type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
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
export type EntryPointVersion = "0.7" | "0.8";

/** Where each version's EntryPointSimulations artifact ships (compiled by eth-infinitism, as released). */
const ENTRY_POINT_SIMULATIONS: Record<EntryPointVersion, string> = {
  "0.7": "@account-abstraction/contracts/artifacts/EntryPointSimulations.json",
  "0.8": "@account-abstraction/contracts-v08/artifacts/EntryPointSimulations.json",
};

/** ERC-7562 MIN_UNSTAKE_DELAY. */
export const MIN_UNSTAKE_DELAY_SEC = 86_400n;

/** The EntryPointSimulations frame is the traced call itself. */
const ENTRY_POINT_DEPTH = 1;

/** EIP-7702 marker in the factory field (v0.8), short or padded: the sender is a delegating EOA, no factory runs. */
const EIP7702_FACTORY_MARKER = /^0x7702(0{36})?$/i;

export type CheckValidationRulesParameters = {
  client: PublicClient;
  entryPoint: { address: Address; version: EntryPointVersion };
  /** The operation as sent to a bundler, signed (a failing signature does not stop the trace, but changes paths). */
  userOperation: UserOperation<"0.7"> | UserOperation<"0.8">;
  /** MIN_STAKE_VALUE: chain-specific in ERC-7562 (~$1000 of the native token). Default 1 wei, as alto. */
  minStake?: bigint;
  /** MIN_UNSTAKE_DELAY; default one day, as ERC-7562 (alto takes 1 s). */
  minUnstakeDelaySec?: bigint;
  /** Extra state for the simulation (e.g. an EIP-7702 sender's delegation code). */
  stateOverride?: StateOverride;
};

/** An entity the operation names, its stake, and whether the tracer saw the EntryPoint call its validation. */
export type TracedEntity = EntityStake & { entity: Erc7562Entity; staked: boolean };

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

export type CheckValidationRulesErrorType = ValidationSimulationError | IncompleteTraceError;

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

  const packed = toPackedUserOperation(userOperation);
  const data = encodeFunctionData({ abi, functionName: "simulateValidation", args: [packed] });
  const stateOverride: StateOverride = [...(parameters.stateOverride ?? []), { address: entryPoint, code: deployedBytecode }];
  // both calls see the same state
  const blockNumber = await client.getBlockNumber();

  const result = await simulateValidation(client, abi, entryPoint, packed, stateOverride, blockNumber);
  const tracerResult = (await client.request({
    method: "debug_traceCall",
    params: [
      { from: zeroAddress, to: entryPoint, data },
      numberToHex(blockNumber),
      { tracer: bundlerCollectorTracer(ENTRY_POINT_DEPTH), stateOverrides: rpcStateOverride(stateOverride) },
    ],
  } as never)) as BundlerTracerResult;

  const sender = getAddress(userOperation.sender);
  const factory = userOperation.factory && !EIP7702_FACTORY_MARKER.test(userOperation.factory) ? getAddress(userOperation.factory) : undefined;
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
    entities.push({ entity, ...stake, staked: isStaked(stake) });
  }

  const violations = findRuleViolations({
    tracerResult,
    entryPoint,
    sender,
    stakes,
    paymasterContext: result.returnInfo.paymasterContext,
    isStaked,
  });
  return { violations, entities, validation: result.returnInfo };
}
