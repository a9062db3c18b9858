/**
 * Operator CLI for a deployed FiatPaymaster.
 *
 *   RPC_URL=… npm run paymaster -- status
 *   RPC_URL=… OPERATOR_PRIVATE_KEY=0x… npm run paymaster -- deposit 0.5
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { type Address, formatEther } from "viem";
import { type Env, UsageError, connect, loadPrivateKey, parseAddress, parseEthAmount, parseSeconds, runMain } from "./lib/cli";
import { DEFAULT_UNSTAKE_DELAY_SEC, deploymentFile, readDeployment } from "./lib/deployPaymaster";
import {
  addPaymasterSigner,
  depositToPaymaster,
  formatStatus,
  readPaymasterStatus,
  removePaymasterSigner,
  stakePaymaster,
  unlockPaymasterStake,
  withdrawFromPaymaster,
  withdrawPaymasterStake,
} from "./lib/operator";

export const PAYMASTER_USAGE = `usage: npm run paymaster -- <command> [arguments] [options]

commands:
  status                          owner, deposit, stake, unlock time, signers
  deposit <eth>                   add to the EntryPoint deposit (any funded key)
  withdraw <to> <eth>             withdraw from the deposit (owner)
  stake <eth> [--unstake-delay s] add stake (owner; default delay ${DEFAULT_UNSTAKE_DELAY_SEC} s)
  unlock                          start the unstake delay (owner)
  withdraw-stake <to>             withdraw the unlocked stake after the delay (owner)
  add-signer <address>            allow a sponsorship signer (owner)
  remove-signer <address>         remove a sponsorship signer (owner)

environment:
  RPC_URL                         the chain's JSON-RPC URL
  OPERATOR_PRIVATE_KEY            the sending key (or OPERATOR_PRIVATE_KEY_FILE); not needed for status

options:
  --paymaster <address>           the paymaster (default: from deployments/<chainId>.json)
  --deployments <dir>             where deployments are recorded (default: deployments)
`;

const COMMANDS = ["status", "deposit", "withdraw", "stake", "unlock", "withdraw-stake", "add-signer", "remove-signer"];

export async function runPaymasterCli(argv: string[], env: Env, out: (line: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        paymaster: { type: "string" },
        deployments: { type: "string" },
        "unstake-delay": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${PAYMASTER_USAGE}`);
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || command === undefined) {
    out(PAYMASTER_USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (!COMMANDS.includes(command)) throw new UsageError(`unknown command "${command}"\n${PAYMASTER_USAGE}`);
  const expected: Record<string, number> = { status: 0, deposit: 1, withdraw: 2, stake: 1, unlock: 0, "withdraw-stake": 1, "add-signer": 1, "remove-signer": 1 };
  if (args.length !== expected[command]) {
    throw new UsageError(`${command} takes ${expected[command]} argument(s), got ${args.length}\n${PAYMASTER_USAGE}`);
  }

  const key = command === "status" ? undefined : loadPrivateKey(env, "OPERATOR_PRIVATE_KEY");
  if (command !== "status" && !key) throw new UsageError(`${command} needs OPERATOR_PRIVATE_KEY (or OPERATOR_PRIVATE_KEY_FILE)`);
  const { client, wallet, chainId } = await connect(env.RPC_URL, key);

  let paymaster: Address;
  if (values.paymaster !== undefined) {
    paymaster = parseAddress(values.paymaster, "--paymaster");
  } else {
    const dir = path.resolve(values.deployments ?? "deployments");
    const deployment = readDeployment(dir, chainId);
    if (!deployment) {
      throw new UsageError(`no deployment for chain ${chainId} (${deploymentFile(dir, chainId)} is missing): run \`npm run deploy\` or pass --paymaster`);
    }
    paymaster = deployment.paymaster;
  }

  const [first, second] = args as [string, string];
  let hash: string;
  switch (command) {
    case "status":
      out(formatStatus(await readPaymasterStatus(client, paymaster)));
      return 0;
    case "deposit":
      hash = await depositToPaymaster(client, wallet!, paymaster, parseEthAmount(first, "amount"));
      break;
    case "withdraw":
      hash = await withdrawFromPaymaster(client, wallet!, paymaster, parseAddress(first, "recipient"), parseEthAmount(second, "amount"));
      break;
    case "stake":
      hash = await stakePaymaster(
        client,
        wallet!,
        paymaster,
        parseEthAmount(first, "amount"),
        parseSeconds(values["unstake-delay"], "--unstake-delay") ?? DEFAULT_UNSTAKE_DELAY_SEC,
      );
      break;
    case "unlock":
      hash = await unlockPaymasterStake(client, wallet!, paymaster);
      break;
    case "withdraw-stake":
      hash = await withdrawPaymasterStake(client, wallet!, paymaster, parseAddress(first, "recipient"));
      break;
    case "add-signer":
      hash = await addPaymasterSigner(client, wallet!, paymaster, parseAddress(first, "signer"));
      break;
    default:
      hash = await removePaymasterSigner(client, wallet!, paymaster, parseAddress(first, "signer"));
  }
  const status = await readPaymasterStatus(client, paymaster);
  out(`${command}: done (tx ${hash})`);
  out(`deposit ${formatEther(status.deposit)} ETH, stake ${formatEther(status.stake)} ETH, signers ${status.signers.length}`);
  return 0;
}

if (require.main === module) runMain(() => runPaymasterCli(process.argv.slice(2), process.env, (line) => console.log(line)));
