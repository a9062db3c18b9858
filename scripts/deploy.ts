/**
 * Deploys the paymaster of one EntryPoint version (FiatPaymaster for v0.7, FiatPaymasterV08, FiatPaymasterV09) to
 * any EVM chain that has that EntryPoint and the deterministic deployment proxy.
 *
 *   RPC_URL=https://… DEPLOYER_PRIVATE_KEY=0x… npm run deploy -- --entry-point-version 0.8 --signer 0x… --deposit 0.1 --stake 0.1
 *
 * Idempotent: re-running finds the deployment and only sends what is missing. Writes deployments/<chainId>.json
 * (v0.7) or deployments/<chainId>-ep<version>.json.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { type Hex, isHex, pad } from "viem";
import {
  type Env,
  UsageError,
  connect,
  loadPrivateKey,
  parseAddress,
  parseEntryPointVersion,
  parseEthAmount,
  parseSeconds,
  runMain,
} from "./lib/cli";
import { deployPaymaster } from "../server/chain/deploy";
import { FIAT_PAYMASTER_CONTRACTS } from "../server/chain/artifacts";

export const DEPLOY_USAGE = `usage: npm run deploy -- [options]

environment:
  RPC_URL                     the chain's JSON-RPC URL
  DEPLOYER_PRIVATE_KEY        the deploying key (or DEPLOYER_PRIVATE_KEY_FILE: a file holding it)

options:
  --entry-point-version <v>   0.7 (default), 0.8 or 0.9: which EntryPoint the paymaster serves
  --owner <address>           paymaster owner (default: the deployer); part of the CREATE2 address
  --salt <bytes32>            CREATE2 salt (default: 0); part of the address
  --signer <address>          a sponsorship signer to add (repeatable)
  --deposit <eth>             keep the EntryPoint deposit at least this much
  --stake <eth>               keep the stake at least this much
  --unstake-delay <seconds>   unstake delay (default 86400)
  --deployments <dir>         where <chainId>.json / <chainId>-ep<version>.json goes (default: deployments)
`;

export async function runDeploy(argv: string[], env: Env, out: (line: string) => void): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "entry-point-version": { type: "string" },
        owner: { type: "string" },
        salt: { type: "string" },
        signer: { type: "string", multiple: true },
        deposit: { type: "string" },
        stake: { type: "string" },
        "unstake-delay": { type: "string" },
        deployments: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${DEPLOY_USAGE}`);
  }
  if (values.help) {
    out(DEPLOY_USAGE);
    return 0;
  }
  const key = loadPrivateKey(env, "DEPLOYER_PRIVATE_KEY");
  if (!key) throw new UsageError("DEPLOYER_PRIVATE_KEY (or DEPLOYER_PRIVATE_KEY_FILE) is not set");
  let salt: Hex | undefined;
  if (values.salt !== undefined) {
    if (!isHex(values.salt) || values.salt.length > 66) throw new UsageError(`--salt must be hex of at most 32 bytes: got ${values.salt}`);
    salt = pad(values.salt);
  }
  const parameters = {
    entryPointVersion: parseEntryPointVersion(values["entry-point-version"]),
    owner: values.owner === undefined ? undefined : parseAddress(values.owner, "--owner"),
    salt,
    signers: (values.signer ?? []).map((s) => parseAddress(s, "--signer")),
    minDeposit: values.deposit === undefined ? undefined : parseEthAmount(values.deposit, "--deposit"),
    minStake: values.stake === undefined ? undefined : parseEthAmount(values.stake, "--stake"),
    unstakeDelaySec: parseSeconds(values["unstake-delay"], "--unstake-delay"),
    deploymentsDir: path.resolve(values.deployments ?? "deployments"),
    log: out,
  };
  const { client, wallet } = await connect(env.RPC_URL, key);
  const deployment = await deployPaymaster(client, wallet!, parameters);
  const contract = FIAT_PAYMASTER_CONTRACTS[parameters.entryPointVersion];
  out(`${contract} ${deployment.paymaster} on chain ${deployment.chainId}, owner ${deployment.owner}`);
  return 0;
}

if (require.main === module) runMain(() => runDeploy(process.argv.slice(2), process.env, (line) => console.log(line)));
