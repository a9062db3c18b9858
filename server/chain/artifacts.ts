import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Abi, Hex } from "viem";
import type { EntryPointVersion } from "./addresses";

export type ContractArtifact = { contractName: string; abi: Abi; bytecode: Hex; deployedBytecode: Hex };

/** Thrown when a contract has not been compiled yet. */
export class ArtifactNotFoundError extends Error {
  override name = "ArtifactNotFoundError";
  constructor(readonly file: string) {
    super(`contract artifact ${file} not found: run \`npm run compile\` first`);
  }
}

const ROOT = path.resolve(__dirname, "../..");

function readArtifact(file: string): ContractArtifact {
  if (!existsSync(file)) throw new ArtifactNotFoundError(path.relative(ROOT, file));
  return JSON.parse(readFileSync(file, "utf8")) as ContractArtifact;
}

/** A contract compiled from this repository's `contracts/` by `npm run compile` (Hardhat). */
export function loadProjectArtifact(sourcePath: string, contractName: string): ContractArtifact {
  return readArtifact(path.join(ROOT, "artifacts/contracts", sourcePath, `${contractName}.json`));
}

const ACCOUNT_ABSTRACTION_PACKAGES: Record<"0.7" | "0.8", string> = {
  "0.7": "@account-abstraction/contracts", // 0.7.0
  "0.8": "@account-abstraction/contracts-v08", // 0.8.0
};

/**
 * A contract as shipped, already compiled, by @account-abstraction/contracts (0.7.0, or 0.8.0 for `version`
 * "0.8"). The EntryPoint and the SimpleAccountFactory must come from these artifacts: a local compile yields other
 * bytecode, so other addresses.
 */
export function loadAccountAbstractionArtifact(contractName: string, version: "0.7" | "0.8" = "0.7"): ContractArtifact {
  return readArtifact(require.resolve(`${ACCOUNT_ABSTRACTION_PACKAGES[version]}/artifacts/${contractName}.json`));
}

/** The paymaster contract for each EntryPoint version: contracts/FiatPaymaster*.sol. */
export const FIAT_PAYMASTER_CONTRACTS: Readonly<Record<EntryPointVersion, string>> = {
  "0.7": "FiatPaymaster",
  "0.8": "FiatPaymasterV08",
  "0.9": "FiatPaymasterV09",
};

export const fiatPaymasterArtifact = (version: EntryPointVersion = "0.7"): ContractArtifact =>
  loadProjectArtifact(`${FIAT_PAYMASTER_CONTRACTS[version]}.sol`, FIAT_PAYMASTER_CONTRACTS[version]);
