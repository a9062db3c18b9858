/**
 * keccak-256 on byte buffers with the `keccak` package's prebuilt native binding (~6× @noble/hashes here), and the
 * EIP-55 checksum of an address computed with it. The sponsorship hot path hashes about eight times per request and
 * checksums every address it parses; through viem (noble's keccak, an LRU of checksums that 20,000 senders churn)
 * the checksum alone was about 4 % of a sponsorship's CPU. viem's `keccak256` and `getAddress` stay the references:
 * the tests check these against them.
 */
import path from "node:path";
import { type Address, keccak256 as viemKeccak256 } from "viem";

/** The `keccak` package's native sponge. Its public API wraps each hash in a stream object; this skips that. */
type KeccakState = { initialize(rate: number, capacity: number): void; absorb(data: Buffer): void; squeeze(bytes: number): Buffer };

function loadNativeKeccak(): (new () => KeccakState) | undefined {
  try {
    const addon = (require("node-gyp-build") as (dir: string) => unknown)(path.dirname(require.resolve("keccak/package.json")));
    return typeof addon === "function" ? (addon as new () => KeccakState) : undefined;
  } catch {
    return undefined;
  }
}
const NativeKeccak = loadNativeKeccak();

export const keccakImplementation: "native" | "js" = NativeKeccak ? "native" : "js";

export function keccak256Buffer(data: Buffer): Buffer {
  if (!NativeKeccak) return Buffer.from(viemKeccak256(data, "bytes"));
  const state = new NativeKeccak();
  state.initialize(1088, 512); // keccak-256: rate 1088 bits, capacity 512, the original (pre-SHA-3) padding
  state.absorb(data);
  return state.squeeze(32);
}

/**
 * The EIP-55 form of a 0x-prefixed 20-byte hex address (any case; the caller has checked the format): each letter
 * upper-cased where the matching nibble of keccak256(the lower-case hex, as ASCII) is 8 or more.
 */
export function checksumAddress(address: string): Address {
  const hex = address.slice(2).toLowerCase();
  const hash = keccak256Buffer(Buffer.from(hex, "latin1"));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const c = hex[i]!;
    const nibble = i % 2 === 0 ? hash[i >> 1]! >> 4 : hash[i >> 1]! & 0x0f;
    out += c >= "a" && nibble >= 8 ? c.toUpperCase() : c;
  }
  return out as Address;
}
