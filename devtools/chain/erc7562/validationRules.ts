// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * ERC-7562 rule checks over the output of the collector tracer (./bundlerCollectorTracer.ts).
 *
 * Adapted from @pimlico/alto 0.0.20 (npm), esm/rpc/validation/TracerResultParserV07.js (`tracerResultParserV07`,
 * `parseEntitySlots`, `associatedWith`, `parseCallStack`, `isStaked`), GPL-3.0-or-later like alto; the licence
 * text is contracts/LICENSE. Rule ids as in ERC-7562 (ethereum/ERCs, ERCS/erc-7562.md).
 *
 * Where this differs from alto, on purpose:
 *  - Every violation is collected (alto throws at the first), each with its rule id, entity and address.
 *  - OP-011 applies to staked entities too: alto skips banned opcodes for a staked entity, ERC-7562 does not
 *    (only BALANCE/SELFBALANCE are allowed to a staked entity, OP-080). GAS not followed by a *CALL is OP-012.
 *    Opcode names outside the EVM's (OP-013) are reported.
 *  - OP-052/OP-053 as ERC-7562 words them: depositTo only from the account or factory, the EntryPoint's fallback
 *    only from the sender (alto lets any entity call both); OP-061 looks at CALL/CALLCODE only.
 *  - An unstaked paymaster's non-empty context (alto's "EREP-050", dropped from the current ERC-7562 draft but
 *    still enforced by alto) is read from the simulation's return value instead of decoding the call stack.
 *  - Staking thresholds are the caller's (ERC-7562: MIN_STAKE_VALUE, MIN_UNSTAKE_DELAY = 1 day); alto uses 1 wei
 *    and 1 second.
 *  - ERC-7562's EIP-7702 authorization rules, which alto's parser does not check: a delegated account as factory
 *    or paymaster (AUTH-020), and a delegated account other than the sender called or its code read during
 *    validation (AUTH-030). Which addresses are delegated is the caller's to say (their code at trace time).
 */
import { type Address, type Hex, getAddress, hexToBigInt, keccak256, pad, toFunctionSelector } from "viem";

export type Erc7562Entity = "factory" | "account" | "paymaster";

export type Erc7562Violation = {
  /** ERC-7562 rule id, e.g. "OP-011", "STO-031". */
  rule: string;
  /** The entity whose validation phase broke the rule. */
  entity: Erc7562Entity;
  /** That entity's address (the factory's, not the EntryPoint's SenderCreator). */
  address: Address;
  description: string;
};

/** An entity's stake at the EntryPoint, as simulateValidation reports it. */
export type EntityStake = { address: Address; stake: bigint; unstakeDelaySec: bigint };

/** Storage touched in one contract: first value read per slot, write count per slot. */
export type StorageAccess = { reads: Record<string, Hex>; writes: Record<string, number> };

/** What the tracer collected during one call the EntryPoint made (an entity's validation phase). */
export type TracedPhase = {
  topLevelMethodSig: Hex;
  topLevelTargetAddress: Address;
  opcodes: Record<string, number>;
  access: Record<string, StorageAccess>;
  contractSize: Record<string, { contractSize: number; opcode: string }>;
  extCodeAccessInfo: Record<string, string>;
  oog?: boolean;
};

/** A frame's entry (type CALL, STATICCALL, DELEGATECALL, CREATE2…) or exit (RETURN, REVERT). */
export type TracedCallEntry = {
  type: string;
  from?: Address;
  to?: Address;
  method?: Hex;
  gas?: number;
  value?: string | number;
  gasUsed?: number;
  data?: Hex;
};

export type BundlerTracerResult = {
  callsFromEntryPoint: TracedPhase[];
  keccak: Hex[];
  calls: TracedCallEntry[];
  logs: { topics: Hex[]; data: Hex }[];
  debug: string[];
};

/** The selectors of the EntryPoint's calls that start each entity's validation phase. */
export const PHASE_SELECTORS: Record<Erc7562Entity, Hex> = {
  factory: toFunctionSelector("createSender(bytes)"),
  account: toFunctionSelector("validateUserOp((address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes),bytes32,uint256)"),
  paymaster: toFunctionSelector(
    "validatePaymasterUserOp((address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes),bytes32,uint256)",
  ),
};

const DEPOSIT_TO = toFunctionSelector("depositTo(address)");

/** [OP-011] opcodes that read the environment, plus BLOBHASH/BLOBBASEFEE (alto bans these for v0.8). */
export const BANNED_OPCODES: ReadonlySet<string> = new Set([
  "ORIGIN",
  "GASPRICE",
  "BLOCKHASH",
  "COINBASE",
  "TIMESTAMP",
  "NUMBER",
  "DIFFICULTY",
  "PREVRANDAO",
  "RANDOM",
  "GASLIMIT",
  "BASEFEE",
  "BLOBHASH",
  "BLOBBASEFEE",
  "INVALID",
  "SELFDESTRUCT",
]);

/** [OP-080] allowed only to a staked entity. */
const STAKED_ONLY_OPCODES: ReadonlySet<string> = new Set(["BALANCE", "SELFBALANCE"]);

/** Every assigned opcode's name, with the aliases tracers use, for [OP-013]. */
const ASSIGNED_OPCODE =
  /^(STOP|ADD|MUL|SUB|DIV|SDIV|MOD|SMOD|ADDMOD|MULMOD|EXP|SIGNEXTEND|LT|GT|SLT|SGT|EQ|ISZERO|AND|OR|XOR|NOT|BYTE|SHL|SHR|SAR|CLZ|KECCAK256|SHA3|ADDRESS|BALANCE|ORIGIN|CALLER|CALLVALUE|CALLDATALOAD|CALLDATASIZE|CALLDATACOPY|CODESIZE|CODECOPY|GASPRICE|EXTCODESIZE|EXTCODECOPY|RETURNDATASIZE|RETURNDATACOPY|EXTCODEHASH|BLOCKHASH|COINBASE|TIMESTAMP|NUMBER|DIFFICULTY|PREVRANDAO|RANDOM|GASLIMIT|CHAINID|SELFBALANCE|BASEFEE|BLOBHASH|BLOBBASEFEE|POP|MLOAD|MSTORE|MSTORE8|SLOAD|SSTORE|JUMP|JUMPI|PC|MSIZE|GAS|JUMPDEST|TLOAD|TSTORE|MCOPY|PUSH([0-9]|[12][0-9]|3[0-2])|DUP([1-9]|1[0-6])|SWAP([1-9]|1[0-6])|LOG[0-4]|CREATE|CALL|CALLCODE|RETURN|DELEGATECALL|CREATE2|STATICCALL|REVERT|INVALID|SELFDESTRUCT)$/;

/** Associated storage reaches this many slots past keccak(A || x) (ERC-7562: n in 0..128). */
const ASSOCIATED_STRUCT_SLOTS = 128n;
/** How many slots a violation's description names before "…". */
const SLOTS_SHOWN = 3;

export type FindRuleViolationsParameters = {
  tracerResult: BundlerTracerResult;
  entryPoint: Address;
  sender: Address;
  /** Stakes of the entities the operation names (factory and paymaster only when it has them). */
  stakes: { account: EntityStake; factory?: EntityStake; paymaster?: EntityStake };
  /** The context validatePaymasterUserOp returned ("0x" if none). */
  paymasterContext: Hex;
  isStaked: (stake: EntityStake) => boolean;
  /** EIP-7702 delegated accounts among the entities and the addresses the trace touched: lower-case address → delegate. */
  eip7702Delegates?: ReadonlyMap<string, Address>;
};

const lower = (address: string) => address.toLowerCase();

/** The phase the tracer recorded for `entity`, if the EntryPoint called it. */
export function tracedPhase(tracerResult: BundlerTracerResult, entity: Erc7562Entity): TracedPhase | undefined {
  return tracerResult.callsFromEntryPoint.find((phase) => phase?.topLevelMethodSig === PHASE_SELECTORS[entity]);
}

/** keccak(A || …) results for each entity address A: the slots associated with A (ERC-7562 definition 5). */
export function parseEntitySlots(addresses: string[], keccakInputs: Hex[]): Map<string, Set<bigint>> {
  const slots = new Map<string, Set<bigint>>();
  for (const address of addresses.map(lower)) {
    const prefix = lower(pad(address as Address));
    const set = new Set<bigint>();
    for (const input of keccakInputs) if (lower(input).startsWith(prefix)) set.add(hexToBigInt(keccak256(input)));
    slots.set(address, set);
  }
  return slots;
}

/** Whether `slot` is associated with `address`: equal to it, or within a struct at keccak(address || x). */
export function associatedWith(slot: Hex, address: string, entitySlots: Map<string, Set<bigint>>): boolean {
  const value = hexToBigInt(slot);
  if (value === hexToBigInt(address as Hex)) return true;
  for (const base of entitySlots.get(lower(address)) ?? []) if (value >= base && value < base + ASSOCIATED_STRUCT_SLOTS) return true;
  return false;
}

type ParsedCall = { type: string; from: string; to: string; method: string; value: bigint; entity?: Erc7562Entity };

function callValue(value: string | number | undefined): bigint {
  if (value === undefined) return 0n;
  try {
    return BigInt(value);
  } catch {
    throw new Error(`the tracer reported a call value that is not a number: ${String(value)}`);
  }
}

/**
 * The calls in the trace (nested before outer, as they return), each with the entity whose phase made it: the
 * phase is the one the EntryPoint opened with the outermost call.
 */
function parseCallStack(tracerResult: BundlerTracerResult, entryPoint: string): ParsedCall[] {
  const phaseOf = (method: string | undefined): Erc7562Entity | undefined =>
    (Object.keys(PHASE_SELECTORS) as Erc7562Entity[]).find((entity) => PHASE_SELECTORS[entity] === method);
  const out: ParsedCall[] = [];
  const stack: ParsedCall[] = [];
  for (const entry of tracerResult.calls) {
    if (/^(RETURN|REVERT)$/.test(entry.type)) {
      // the EntryPoint's own top-level RETURN has no entry to match
      const top = stack.pop();
      if (top) out.push(top);
      continue;
    }
    const from = lower(entry.from ?? "");
    const parent = stack[stack.length - 1];
    const entity = parent ? parent.entity : from === entryPoint ? phaseOf(entry.method) : undefined;
    stack.push({ type: entry.type, from, to: lower(entry.to ?? ""), method: entry.method ?? "0x", value: callValue(entry.value), entity });
  }
  return out;
}

function describeSlots(slots: string[]): string {
  const shown = slots.slice(0, SLOTS_SHOWN).join(", ");
  return slots.length > SLOTS_SHOWN ? `${shown} … (${slots.length} slots)` : shown;
}

/** Every ERC-7562 rule the traced validation breaks; empty when it keeps them all. */
export function findRuleViolations(parameters: FindRuleViolationsParameters): Erc7562Violation[] {
  const { tracerResult, stakes, isStaked } = parameters;
  const entryPoint = lower(parameters.entryPoint);
  const sender = lower(parameters.sender);
  const violations: Erc7562Violation[] = [];
  const entityOrder: Erc7562Entity[] = ["factory", "account", "paymaster"];
  const present = entityOrder.filter((entity) => stakes[entity] !== undefined);
  const staked = (entity: Erc7562Entity) => isStaked(stakes[entity]!);
  const entityAddress = (entity: Erc7562Entity) => lower(stakes[entity]!.address);
  const report = (rule: string, entity: Erc7562Entity, description: string) =>
    violations.push({ rule, entity, address: getAddress(stakes[entity]!.address), description });
  const nameOf = (address: string) => present.find((entity) => entityAddress(entity) === lower(address)) ?? getAddress(address);

  const callStack = parseCallStack(tracerResult, entryPoint);
  for (const call of callStack) {
    if (!call.entity) continue;
    if (call.to === entryPoint && call.from !== entryPoint) {
      if (call.method === DEPOSIT_TO && (call.entity === "account" || call.entity === "factory")) continue; // [OP-052]
      if (call.method === "0x" && call.from === sender) continue; // [OP-053]
      const what = call.method === "0x" ? "its fallback function" : `method ${call.method}`;
      report("OP-054", call.entity, `${call.entity} calls the EntryPoint (${what}) from ${nameOf(call.from)}: only depositTo from the account or factory, or the fallback from the sender, are allowed`);
    } else if ((call.type === "CALL" || call.type === "CALLCODE") && call.value !== 0n && call.to !== entryPoint) {
      report("OP-061", call.entity, `${call.entity} sends ${call.value} wei to ${nameOf(call.to)}: CALL with value is allowed only to the EntryPoint`);
    }
  }

  const entitySlots = parseEntitySlots([sender, ...present.map(entityAddress)], tracerResult.keccak);
  const hasFactory = stakes.factory !== undefined;
  let createUsedBefore = false;

  for (const entity of present) {
    const phase = tracedPhase(tracerResult, entity);
    if (!phase) continue; // the caller checks that each entity's phase was traced
    const address = entityAddress(entity);
    const opcodes = phase.opcodes;

    if (phase.oog) report("OP-020", entity, `${entity} runs out of gas during validation (a revert on out-of-gas leaks the gas limit)`);

    for (const opcode of Object.keys(opcodes)) {
      if (BANNED_OPCODES.has(opcode)) report("OP-011", entity, `${entity} uses the banned opcode ${opcode}`);
      else if (opcode === "GAS") report("OP-012", entity, `${entity} uses GAS other than right before a *CALL`);
      else if (STAKED_ONLY_OPCODES.has(opcode) && !staked(entity)) report("OP-080", entity, `unstaked ${entity} uses ${opcode} (allowed only to a staked entity)`);
      else if (!ASSIGNED_OPCODE.test(opcode)) report("OP-013", entity, `${entity} executes an unassigned opcode (${opcode})`);
    }

    // [OP-031] CREATE2 once, in the factory, for the sender; CREATE only under a factory (alto's reading)
    const creates = (opcodes.CREATE ?? 0) + (opcodes.CREATE2 ?? 0);
    if (entity === "factory") {
      if (creates > 2 || (opcodes.CREATE2 ?? 0) >= 2) report("OP-031", entity, `factory creates ${creates} contracts (CREATE2 is allowed once, for the sender)`);
    } else if (creates > 0) {
      const allowed = hasFactory && (staked("factory") || (opcodes.CREATE ?? 0) > 0);
      if (!allowed || (createUsedBefore && creates > 1)) report("OP-031", entity, `${entity} creates a contract during validation (CREATE2 is allowed only in the factory, for the sender)`);
    }
    if (creates > 0) createUsedBefore = true;

    for (const [contract, { reads, writes }] of Object.entries(phase.access)) {
      const accessed = lower(contract);
      if (accessed === sender) continue; // [STO-010]
      if (accessed === entryPoint) continue; // deposits and nonces: calls into the EntryPoint are checked above
      const needStake = new Map<string, string[]>();
      const needs = (rule: string, slot: string) => needStake.set(rule, [...(needStake.get(rule) ?? []), slot]);
      const forbiddenWrites: string[] = [];
      for (const slot of new Set([...Object.keys(writes), ...Object.keys(reads)])) {
        if (associatedWith(slot as Hex, sender, entitySlots)) {
          // [STO-021] allowed once the account exists; [STO-022] with initCode, only if the factory is staked
          // (alto also lets a staked entity through here, by STO-032/033)
          if (hasFactory && !((address === sender || entity === "paymaster") && staked("factory"))) needs("STO-022", slot);
        } else if (associatedWith(slot as Hex, address, entitySlots)) {
          needs("STO-032", slot);
        } else if (accessed === address) {
          needs("STO-031", slot);
        } else if (writes[slot] === undefined) {
          needs("STO-033", slot);
        } else {
          forbiddenWrites.push(slot);
        }
      }
      const where = nameOf(accessed);
      if (forbiddenWrites.length > 0) {
        report("STO-032", entity, `${entity} writes to ${where} storage associated with neither the sender nor itself (slots ${describeSlots(forbiddenWrites)}): forbidden even to a staked entity`);
      }
      if (staked(entity)) continue;
      for (const [rule, slots] of needStake) {
        const kind =
          rule === "STO-031"
            ? "its own storage"
            : rule === "STO-032"
              ? `storage associated with itself in ${where}`
              : rule === "STO-033"
                ? `storage of ${where}`
                : `storage associated with the sender in ${where} while the account is being created by an unstaked factory`;
        report(rule, entity, `unstaked ${entity} accesses ${kind} (slots ${describeSlots(slots)}): ERC-7562 allows this only to a staked ${entity}`);
      }
    }

    for (const [touched, { contractSize, opcode }] of Object.entries(phase.contractSize)) {
      if (lower(touched) === sender || contractSize > 2) continue; // [OP-042]
      const precompileRange = hexToBigInt(touched as Hex) < 0x200n;
      report(
        precompileRange ? "OP-062" : "OP-041",
        entity,
        precompileRange
          ? `${entity} calls ${getAddress(touched)} with ${opcode}: only the core precompiles 0x01…0x09 are allowed`
          : `${entity} uses ${getAddress(touched)}, which has no code, with ${opcode}`,
      );
    }

    // (the tracer records the opcode after the EXTCODE*, so it is not named)
    if (Object.keys(phase.extCodeAccessInfo).some((touched) => lower(touched) === entryPoint)) {
      report("OP-054", entity, `${entity} reads the EntryPoint's code with EXTCODE* (only EXTCODESIZE followed by ISZERO is allowed, OP-051)`);
    }
  }

  // [AUTH-020] a delegated account may only be the sender; [AUTH-030] and only the sender may be used
  const delegates = parameters.eip7702Delegates ?? new Map<string, Address>();
  const delegatedEntities = new Set<string>();
  for (const entity of present) {
    const delegate = delegates.get(entityAddress(entity));
    if (entity === "account" || !delegate) continue;
    delegatedEntities.add(entityAddress(entity));
    report("AUTH-020", entity, `the ${entity} is an EIP-7702 delegated account (delegate ${delegate}): such an account may only be an operation's sender`);
  }
  for (const entity of present) {
    const phase = tracedPhase(tracerResult, entity);
    if (!phase) continue;
    const used = new Map<string, string>();
    for (const [touched, { opcode }] of Object.entries(phase.contractSize)) used.set(lower(touched), opcode);
    for (const touched of Object.keys(phase.extCodeAccessInfo)) if (!used.has(lower(touched))) used.set(lower(touched), "EXTCODE*");
    for (const [touched, opcode] of used) {
      const delegate = delegates.get(touched);
      if (!delegate || touched === sender || delegatedEntities.has(touched)) continue;
      report("AUTH-030", entity, `${entity} uses the EIP-7702 delegated account ${getAddress(touched)} (delegate ${delegate}) with ${opcode}: only the sender's delegation may be used`);
    }
  }

  if (stakes.paymaster && parameters.paymasterContext !== "0x" && !staked("paymaster")) {
    report("EREP-050", "paymaster", "unstaked paymaster returns a context (postOp): alto refuses it; the current ERC-7562 draft dropped this rule");
  }
  return violations;
}
