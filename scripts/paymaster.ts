/**
 * Operator CLI for a deployed FiatPaymaster.
 *
 *   RPC_URL=… npm run paymaster -- status
 *   RPC_URL=… OPERATOR_PRIVATE_KEY=0x… npm run paymaster -- deposit 0.5
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { type Address, type Hex, type PublicClient, formatEther } from "viem";
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
import { DEFAULT_UNSTAKE_DELAY_SEC, deploymentFile, readDeployment } from "../server/chain/deploy";
import {
  type OperatorWallet,
  addPaymasterSigner,
  depositToPaymaster,
  formatStatus,
  readPaymasterStatus,
  removePaymasterSigner,
  stakePaymaster,
  unlockPaymasterStake,
  withdrawFromPaymaster,
  withdrawPaymasterStake,
} from "../server/chain/operator";

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
  --paymaster <address>           the paymaster (default: from the deployment record of --entry-point-version)
  --entry-point-version <v>       0.7 (default), 0.8 or 0.9: whose record deployments/ gives the paymaster from
  --deployments <dir>             where deployments are recorded (default: deployments)
`;

const COMMANDS = ["status", "deposit", "withdraw", "stake", "unlock", "withdraw-stake", "add-signer", "remove-signer"];

/** Options that take a value: what follows them is theirs, even when it starts with a dash. */
const VALUE_OPTIONS = new Set(["--paymaster", "--deployments", "--unstake-delay", "--entry-point-version"]);

export async function runPaymasterCli(argv: string[], env: Env, out: (line: string) => void): Promise<number> {
  // parseArgs would take "-1" for an unknown short option; say what is wrong with it instead
  const negative = argv.find((arg, i) => /^-\.?\d/.test(arg) && !VALUE_OPTIONS.has(argv[i - 1] ?? ""));
  if (negative !== undefined) throw new UsageError(`${negative} is negative: amounts are positive ETH values like 0.5`);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        paymaster: { type: "string" },
        "entry-point-version": { type: "string" },
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
  if (values["unstake-delay"] !== undefined && command !== "stake") throw new UsageError(`--unstake-delay only applies to stake`);

  // check every argument before touching the network: a typo is reported as such, whatever the RPC does
  const [first, second] = args as [string, string];
  let action: ((client: PublicClient, wallet: OperatorWallet, paymaster: Address) => Promise<Hex>) | undefined;
  switch (command) {
    case "status":
      break;
    case "deposit": {
      const amount = parseEthAmount(first, "amount");
      action = (client, wallet, paymaster) => depositToPaymaster(client, wallet, paymaster, amount);
      break;
    }
    case "withdraw": {
      const to = parseAddress(first, "recipient");
      const amount = parseEthAmount(second, "amount");
      action = (client, wallet, paymaster) => withdrawFromPaymaster(client, wallet, paymaster, to, amount);
      break;
    }
    case "stake": {
      const amount = parseEthAmount(first, "amount");
      const delay = parseSeconds(values["unstake-delay"], "--unstake-delay") ?? DEFAULT_UNSTAKE_DELAY_SEC;
      action = (client, wallet, paymaster) => stakePaymaster(client, wallet, paymaster, amount, delay);
      break;
    }
    case "unlock":
      action = (client, wallet, paymaster) => unlockPaymasterStake(client, wallet, paymaster);
      break;
    case "withdraw-stake": {
      const to = parseAddress(first, "recipient");
      action = (client, wallet, paymaster) => withdrawPaymasterStake(client, wallet, paymaster, to);
      break;
    }
    case "add-signer": {
      const signer = parseAddress(first, "signer");
      action = (client, wallet, paymaster) => addPaymasterSigner(client, wallet, paymaster, signer);
      break;
    }
    default: {
      const signer = parseAddress(first, "signer");
      action = (client, wallet, paymaster) => removePaymasterSigner(client, wallet, paymaster, signer);
    }
  }
  const explicitPaymaster = values.paymaster === undefined ? undefined : parseAddress(values.paymaster, "--paymaster");
  const version = parseEntryPointVersion(values["entry-point-version"]);
  if (explicitPaymaster !== undefined && values["entry-point-version"] !== undefined) {
    throw new UsageError("--paymaster and --entry-point-version exclude each other: the paymaster knows its EntryPoint");
  }

  const key = command === "status" ? undefined : loadPrivateKey(env, "OPERATOR_PRIVATE_KEY");
  if (command !== "status" && !key) throw new UsageError(`${command} needs OPERATOR_PRIVATE_KEY (or OPERATOR_PRIVATE_KEY_FILE)`);
  const { client, wallet, chainId } = await connect(env.RPC_URL, key);

  let paymaster: Address;
  if (explicitPaymaster !== undefined) {
    paymaster = explicitPaymaster;
  } else {
    const dir = path.resolve(values.deployments ?? "deployments");
    const deployment = readDeployment(dir, chainId, version);
    if (!deployment) {
      const file = deploymentFile(dir, chainId, version);
      throw new UsageError(`no v${version} deployment for chain ${chainId} (${file} is missing): run \`npm run deploy\` or pass --paymaster`);
    }
    paymaster = deployment.paymaster;
  }

  if (action === undefined) {
    out(formatStatus(await readPaymasterStatus(client, paymaster)));
    return 0;
  }
  const hash = await action(client, wallet!, paymaster);
  const status = await readPaymasterStatus(client, paymaster);
  out(`${command}: done (tx ${hash})`);
  out(`deposit ${formatEther(status.deposit)} ETH, stake ${formatEther(status.stake)} ETH, signers ${status.signers.length}`);
  return 0;
}

if (require.main === module) runMain(() => runPaymasterCli(process.argv.slice(2), process.env, (line) => console.log(line)));
