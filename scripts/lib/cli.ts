import { readFileSync } from "node:fs";
import {
  type Address,
  type Hex,
  type PublicClient,
  BaseError,
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  isAddress,
  isHex,
  getAddress,
  parseEther,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { OperatorWallet } from "../../server/chain/operator";
import { ENTRY_POINT_VERSIONS, type EntryPointVersion } from "../../server/chain/addresses";

/** A problem with what the user typed or configured: printed as one line, no stack trace. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type Env = Record<string, string | undefined>;

/** Private keys are integers in [1, n) for the curve order n. */
const SECP256K1_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/**
 * A private key from `NAME` or from the file named by `NAME_FILE` (e.g. a mounted secret). The key is never
 * printed; errors name only the variable.
 */
export function loadPrivateKey(env: Env, name: string): Hex | undefined {
  const fileName = env[`${name}_FILE`];
  let raw = env[name];
  if (fileName) {
    try {
      raw = readFileSync(fileName, "utf8");
    } catch (error) {
      throw new UsageError(`cannot read ${name}_FILE (${fileName}): ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
    }
  }
  if (raw === undefined || raw.trim() === "") return undefined;
  const key = raw.trim().startsWith("0x") ? raw.trim() : `0x${raw.trim()}`;
  if (!isHex(key) || key.length !== 66) throw new UsageError(`${name} is not a 32-byte hex private key`);
  // checked here because the signing library's own error prints the key (as a number)
  if (BigInt(key) === 0n || BigInt(key) >= SECP256K1_ORDER) throw new UsageError(`${name} is not a valid secp256k1 private key`);
  return key;
}

export function parseAddress(value: string | undefined, what: string): Address {
  if (value === undefined) throw new UsageError(`missing ${what}`);
  if (!isAddress(value, { strict: false })) throw new UsageError(`${what} is not an address: ${value}`);
  return getAddress(value);
}

/** `--entry-point-version`: 0.7 (the default), 0.8 or 0.9; a leading "v" is accepted. */
export function parseEntryPointVersion(value: string | undefined, what = "--entry-point-version"): EntryPointVersion {
  if (value === undefined) return "0.7";
  const version = value.replace(/^v/, "");
  if (!(ENTRY_POINT_VERSIONS as readonly string[]).includes(version)) {
    throw new UsageError(`${what} must be one of ${ENTRY_POINT_VERSIONS.join(", ")}: got ${value}`);
  }
  return version as EntryPointVersion;
}

/** Ether amounts as decimal strings ("0.5"), converted exactly to wei. */
export function parseEthAmount(value: string | undefined, what: string): bigint {
  if (value === undefined) throw new UsageError(`missing ${what} (in ETH, e.g. 0.5)`);
  if (!/^\d+(\.\d{1,18})?$/.test(value)) throw new UsageError(`${what} must be an amount in ETH like 0.5: got ${value}`);
  return parseEther(value);
}

export function parseSeconds(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${what} must be a whole number of seconds: got ${value}`);
  return Number(value);
}

/**
 * Clients for `rpcUrl`, checked by asking the chain id: an unreachable or non-Ethereum URL fails here with a
 * message that names it, not later in a deep stack.
 */
export async function connect(rpcUrl: string | undefined, privateKey?: Hex): Promise<{ client: PublicClient; wallet?: OperatorWallet; chainId: number }> {
  if (!rpcUrl) throw new UsageError("RPC_URL is not set (e.g. RPC_URL=http://127.0.0.1:8545)");
  let url: URL;
  try {
    url = new URL(rpcUrl);
  } catch {
    throw new UsageError(`RPC_URL is not a URL: ${rpcUrl}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`RPC_URL must be an http(s) URL (e.g. http://127.0.0.1:8545): got ${url.protocol} scheme`);
  }
  const transport = http(url.toString(), { retryCount: 1, timeout: 15_000 });
  const probe = createPublicClient({ transport });
  let chainId: number;
  try {
    chainId = await probe.getChainId();
  } catch (error) {
    const detail = error instanceof BaseError ? error.shortMessage : String(error);
    throw new UsageError(`cannot reach the RPC at ${url.origin}: ${detail}`);
  }
  const chain = defineChain({
    id: chainId,
    name: `chain ${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [url.toString()] } },
  });
  const client = createPublicClient({ chain, transport, pollingInterval: 250 }) as PublicClient;
  const wallet = privateKey ? createWalletClient({ chain, transport, account: privateKeyToAccount(privateKey) }) : undefined;
  return { client, wallet, chainId };
}

/** Runs a CLI entry point: known errors print one line to stderr and exit 1; others print their message too. */
export function runMain(main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      process.exitCode = code ?? 0;
    },
    (error: unknown) => {
      const message =
        error instanceof BaseError ? error.shortMessage : error instanceof Error ? error.message : String(error);
      process.stderr.write(`error: ${message}\n`);
      process.exitCode = 1;
    },
  );
}
