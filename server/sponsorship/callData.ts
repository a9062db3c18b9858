/**
 * Which contracts a UserOperation calls, read from the account's `callData`, so a policy can hold a key to an
 * allowlist of targets. Pure and total: anything that is not a call we understand comes back as `unknown` (with
 * its selector, for the refusal message), never as an exception — the policy then fails closed.
 *
 * Supported (the forms the SDKs encode: permissionless 0.4.1, viem's toSimple7702SmartAccount):
 *   execute(address dest, uint256 value, bytes func)        0xb61d27f6  SimpleAccount 0.7/0.8, Simple7702Account,
 *                                                                        LightAccount, thirdweb: one call
 *   executeBatch(address[] dest, uint256[] value, bytes[])  0x47e1da2a  SimpleAccount 0.7, LightAccount, thirdweb
 *   executeBatch(address[] dest, bytes[] func)              0x18dfb3c7  SimpleAccount 0.6, LightAccount 1
 *   executeBatch((address,uint256,bytes)[] calls)           0x34fcd5be  SimpleAccount 0.8, Simple7702Account
 *   executeUserOp(address,uint256,bytes,uint8 operation)    0x7bb37428  Safe 4337 module; a call (operation 0), or a
 *   executeUserOpWithErrorString(…, uint8 operation)        0x541d63c8  delegatecall to Safe's MultiSendCallOnly
 *                                                                        (a batch: its packed calls are read)
 *   execute(bytes32 mode, bytes executionCalldata)          0xe9ae5c53  ERC-7579 (Kernel v3, Nexus, Etherspot
 *                                                                        modular): single or batch, default or try
 * Refused as undecodable: a delegatecall anywhere else (Safe operation 1 to another contract, an ERC-7579
 * delegatecall or staticcall mode, a MultiSend entry that delegatecalls) — a delegatecall runs the target's code
 * as the account, so under a target allowlist it could call anything; an ERC-7579 mode with a mode selector
 * (its payload changes what runs); arrays of different lengths.
 *
 * Only the outer call's destinations are reported. What a target does next (a multicall, a proxy) is the target's
 * business; that is why the allowlist names contracts the operator trusts, not functions.
 */
import { type Address, type Hex, decodeAbiParameters, decodeFunctionData, parseAbi, parseAbiParameters } from "viem";

export type CallTargets = { kind: "execute" | "executeBatch"; targets: Address[] } | { kind: "unknown"; selector: Hex };

export const simpleAccountCallAbi = parseAbi([
  "function execute(address dest, uint256 value, bytes func)",
  "function executeBatch(address[] dest, uint256[] value, bytes[] func)",
  "function executeBatch(address[] dest, bytes[] func)",
]);

const accountCallAbi = parseAbi([
  "function execute(address dest, uint256 value, bytes func)",
  "function executeBatch(address[] dest, uint256[] value, bytes[] func)",
  "function executeBatch(address[] dest, bytes[] func)",
  "struct Call { address target; uint256 value; bytes data; }",
  "function executeBatch(Call[] calls)",
  "function executeUserOp(address to, uint256 value, bytes data, uint8 operation)",
  "function executeUserOpWithErrorString(address to, uint256 value, bytes data, uint8 operation)",
  "function execute(bytes32 mode, bytes executionCalldata)",
]);

const multiSendAbi = parseAbi(["function multiSend(bytes transactions)"]);

/** Safe's MultiSendCallOnly (1.4.1 and 1.5.0): it refuses inner delegatecalls itself. Lower-case. */
export const SAFE_MULTI_SEND_CALL_ONLY: readonly string[] = ["0x9641d764fc13c8b624c04430c7356c1c7c8102e2", "0xa83c336b20401af773b6219ba5027174338d1836"];

const executionsParameters = parseAbiParameters("(address target, uint256 value, bytes callData)[]");

const HEX = /^0x(?:[0-9a-f]{2})*$/;

/**
 * The destinations of the account's calls, lower-case, one per call in call order (duplicates kept).
 *
 * Empty callData (`0x`, e.g. an operation that only deploys the account) makes the EntryPoint call nothing, so it
 * is reported as an `execute` with no targets: an op that calls nothing calls no forbidden contract, and a target
 * allowlist lets it through. A batch of zero calls is the same.
 */
export function decodeCallTargets(callData: Hex): CallTargets {
  // viem matches selectors case-sensitively; callData is bytes, so its case carries no meaning
  if (typeof callData !== "string") return unknown("");
  const data = callData.toLowerCase() as Hex;
  if (!HEX.test(data)) return unknown(data);
  if (data === "0x") return { kind: "execute", targets: [] };
  try {
    const targets = decode(data);
    return targets ? { kind: targets.batch ? "executeBatch" : "execute", targets: targets.to.map(lower) } : unknown(data);
  } catch {
    return unknown(data);
  }
}

type Decoded = { batch: boolean; to: readonly Address[] } | undefined;

function decode(data: Hex): Decoded {
  const call = decodeFunctionData({ abi: accountCallAbi, data });
  const args = call.args as readonly unknown[];
  switch (call.functionName) {
    case "execute":
      return args.length === 3 ? { batch: false, to: [args[0] as Address] } : erc7579(args[0] as Hex, args[1] as Hex);
    case "executeBatch": {
      if (args.length === 1) return { batch: true, to: (args[0] as ReadonlyArray<{ target: Address }>).map((c) => c.target) };
      // SimpleAccount reverts on arrays of different lengths (an empty value array means "no value"), so such a
      // batch calls nothing we could name: refuse to guess rather than report some of its targets
      const [dest, value, func] = (args.length === 3 ? args : [args[0], [], args[1]]) as [Address[], bigint[], Hex[]];
      if (dest.length !== func.length || (value.length !== 0 && value.length !== func.length)) return undefined;
      return { batch: true, to: dest };
    }
    case "executeUserOp":
    case "executeUserOpWithErrorString": {
      const [to, , inner, operation] = args as [Address, bigint, Hex, number];
      if (operation === 0) return { batch: false, to: [to] };
      if (operation === 1 && SAFE_MULTI_SEND_CALL_ONLY.includes(to.toLowerCase())) return multiSend(inner);
      return undefined;
    }
    default:
      return undefined;
  }
}

/** ERC-7579 execute: mode = callType ‖ execType ‖ 4 unused ‖ modeSelector (4) ‖ payload (22). */
function erc7579(mode: Hex, execution: Hex): Decoded {
  const callType = mode.slice(2, 4);
  const execType = mode.slice(4, 6);
  const modeSelector = mode.slice(14, 22);
  if ((execType !== "00" && execType !== "01") || modeSelector !== "00000000") return undefined;
  if (callType === "00") {
    // single: target (20 bytes) ‖ value (32) ‖ callData
    if (execution.length < 2 + 104) return undefined;
    return { batch: false, to: [`0x${execution.slice(2, 42)}` as Address] };
  }
  if (callType === "01") {
    const [executions] = decodeAbiParameters(executionsParameters, execution);
    return { batch: true, to: executions.map((e) => e.target) };
  }
  return undefined; // 0xfe staticcall, 0xff delegatecall, anything else
}

/** Safe's multiSend(bytes): packed (uint8 operation, address to, uint256 value, uint256 length, bytes data)… */
function multiSend(inner: Hex): Decoded {
  const call = decodeFunctionData({ abi: multiSendAbi, data: inner });
  const packed = call.args[0].slice(2).toLowerCase();
  const to: Address[] = [];
  for (let at = 0; at < packed.length; ) {
    if (packed.length - at < 2 * (1 + 20 + 32 + 32)) return undefined;
    if (packed.slice(at, at + 2) !== "00") return undefined; // an inner delegatecall
    to.push(`0x${packed.slice(at + 2, at + 42)}` as Address);
    const length = BigInt(`0x${packed.slice(at + 106, at + 170)}`);
    if (length > BigInt(packed.length)) return undefined;
    at += 170 + Number(length) * 2;
    if (at > packed.length) return undefined;
  }
  return { batch: true, to };
}

function lower(address: Address): Address {
  return address.toLowerCase() as Address;
}

/** The first four bytes, or whatever there is when there are fewer (or when it is not hex at all: `0x`). */
function unknown(data: string): CallTargets {
  const selector = /^0x[0-9a-f]*$/.test(data) ? data.slice(0, 10) : "0x";
  return { kind: "unknown", selector: selector as Hex };
}
