/**
 * Which contracts a UserOperation calls, read from the account's `callData`, so a policy can hold a key to an
 * allowlist of targets. Pure and total: anything that is not a call we understand comes back as `unknown` (with
 * its selector, for the refusal message), never as an exception — the policy then fails closed.
 *
 * Supported: eth-infinitism SimpleAccount 0.7.0, the account permissionless' `toSimpleSmartAccount` builds for
 * EntryPoint 0.7 —
 *   execute(address dest, uint256 value, bytes func)                    one call (permissionless, 1 call)
 *   executeBatch(address[] dest, uint256[] value, bytes[] func)          0.7 batch (permissionless, 2+ calls)
 *   executeBatch(address[] dest, bytes[] func)                           the older (0.6) batch, same selector family
 * The 0.8 `executeBatch((address,uint256,bytes)[])` is not listed: this paymaster is for EntryPoint 0.7.
 *
 * Only the outer call's destinations are reported. What a target does next (a multicall, a proxy) is the target's
 * business; that is why the allowlist names contracts the operator trusts, not functions.
 */
import { type Address, type Hex, decodeFunctionData, parseAbi } from "viem";

export type CallTargets = { kind: "execute" | "executeBatch"; targets: Address[] } | { kind: "unknown"; selector: Hex };

export const simpleAccountCallAbi = parseAbi([
  "function execute(address dest, uint256 value, bytes func)",
  "function executeBatch(address[] dest, uint256[] value, bytes[] func)",
  "function executeBatch(address[] dest, bytes[] func)",
]);

const HEX = /^0x(?:[0-9a-f]{2})*$/;

/**
 * The destinations of the account's calls, lower-case, one per call in call order (duplicates kept).
 *
 * Empty callData (`0x`, e.g. an operation that only deploys the account) makes the EntryPoint call nothing, so it
 * is reported as an `execute` with no targets: an op that calls nothing calls no forbidden contract, and a target
 * allowlist lets it through. An `executeBatch` of zero calls is the same.
 */
export function decodeCallTargets(callData: Hex): CallTargets {
  // viem matches selectors case-sensitively; callData is bytes, so its case carries no meaning
  if (typeof callData !== "string") return unknown("");
  const data = callData.toLowerCase() as Hex;
  if (!HEX.test(data)) return unknown(data);
  if (data === "0x") return { kind: "execute", targets: [] };
  try {
    const decoded = decodeFunctionData({ abi: simpleAccountCallAbi, data });
    if (decoded.functionName === "execute") return { kind: "execute", targets: [lower(decoded.args[0])] };
    // SimpleAccount reverts on arrays of different lengths (an empty value array means "no value"), so such a
    // batch calls nothing we could name: refuse to guess rather than report some of its targets
    const [dest, value, func] = decoded.args.length === 3 ? decoded.args : [decoded.args[0], [], decoded.args[1]];
    if (dest.length !== func.length || (value.length !== 0 && value.length !== func.length)) return unknown(data);
    return { kind: "executeBatch", targets: dest.map(lower) };
  } catch {
    return unknown(data);
  }
}

function lower(address: Address): Address {
  return address.toLowerCase() as Address;
}

/** The first four bytes, or whatever there is when there are fewer (or when it is not hex at all: `0x`). */
function unknown(data: string): CallTargets {
  const selector = /^0x[0-9a-f]*$/.test(data) ? data.slice(0, 10) : "0x";
  return { kind: "unknown", selector: selector as Hex };
}
