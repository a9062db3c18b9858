/**
 * `npm run abi`: writes server/chain/fiatPaymasterAbi.ts from the compiled FiatPaymaster (`npm run compile`), so
 * the server reads the contract through a typed ABI without needing compiled artifacts at run time.
 * server/chain/fiatPaymasterAbi.test.ts fails when the committed file and the contract differ.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fiatPaymasterArtifact } from "../server/chain/artifacts";

export const ABI_FILE = path.resolve(__dirname, "..", "server", "chain", "fiatPaymasterAbi.ts");

export function abiSource(abi: unknown): string {
  return `/** FiatPaymaster's ABI, generated from contracts/FiatPaymaster.sol by \`npm run abi\` (do not edit). */
export const fiatPaymasterAbi = ${JSON.stringify(abi, null, 2)} as const;
`;
}

if (require.main === module) {
  writeFileSync(ABI_FILE, abiSource(fiatPaymasterArtifact().abi));
  console.log(`wrote ${path.relative(process.cwd(), ABI_FILE)}`);
}
