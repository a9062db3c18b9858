import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Abi, Hex } from "viem";

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

/**
 * A contract as shipped, already compiled, by @account-abstraction/contracts@0.7.0. The EntryPoint and the
 * SimpleAccountFactory must come from these artifacts: a local compile yields other bytecode, so other addresses.
 */
export function loadAccountAbstractionArtifact(contractName: string): ContractArtifact {
  return readArtifact(require.resolve(`@account-abstraction/contracts/artifacts/${contractName}.json`));
}

export const fiatPaymasterArtifact = (): ContractArtifact => loadProjectArtifact("FiatPaymaster.sol", "FiatPaymaster");
