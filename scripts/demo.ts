/**
 * The scripted demo against the local stack (`npm start` in another terminal, then `npm run demo`):
 *   1. a new SimpleAccount with no ETH at all;
 *   2. its owner tops up ¥10 through the gateway simulator (Alipay, paid on the simulator's payer side);
 *   3. it sends a UserOperation through alto, sponsored through our ERC-7677 endpoint, using permissionless
 *      exactly as a DApp would;
 *   4. the server settles it from the chain: the demo prints the charge, the gas used and the balances.
 *
 * It reads the stack's URLs and demo API key from .data/local-stack.json (written by `npm start`), or from
 * SERVER_URL, BUNDLER_URL, RPC_URL, SIMULATOR_URL, API_KEY. PROVIDER=wechat tops up through WeChat Pay instead.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { createSmartAccountClient } from "permissionless";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { http, createPublicClient, defineChain, formatEther } from "viem";
import { createPaymasterClient } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07 } from "../server/chain/addresses";
import { UsageError, runMain } from "./lib/cli";
import { LOCAL_STACK_FILE, type LocalStackInfo } from "../devtools/localStack";
import { describeRpcFailure } from "../web/src/rpcError";

function stackInfo(): LocalStackInfo {
  const env = process.env;
  const stackFile = path.resolve(env.LOCAL_STACK_FILE ?? LOCAL_STACK_FILE);
  const file = existsSync(stackFile) ? (JSON.parse(readFileSync(stackFile, "utf8")) as LocalStackInfo) : undefined;
  const info = {
    serverUrl: env.SERVER_URL ?? file?.serverUrl,
    bundlerUrl: env.BUNDLER_URL ?? file?.bundlerUrl,
    rpcUrl: env.RPC_URL ?? file?.rpcUrl,
    chainId: Number(env.CHAIN_ID ?? file?.chainId ?? 31337),
    simulatorUrl: env.SIMULATOR_URL ?? file?.simulatorUrl,
    apiKey: env.API_KEY ?? file?.apiKey,
    paymaster: file?.paymaster ?? "",
  };
  const missing = Object.entries(info).filter(([k, v]) => k !== "paymaster" && !v).map(([k]) => k);
  if (missing.length > 0) throw new UsageError(`no local stack found (${stackFile} is missing and ${missing.join(", ")} not set): run \`npm start\` in another terminal first`);
  return info as LocalStackInfo;
}

const yuan = (fen: bigint | string) => `¥${(Number(BigInt(fen)) / 100).toFixed(2)}`;

async function json<T>(response: Promise<Response>, what: string): Promise<T> {
  let r: Response;
  try {
    r = await response;
  } catch (error) {
    throw new UsageError(`${what}: the stack does not answer (${(error as Error).message}); is \`npm start\` running?`);
  }
  const text = await r.text();
  if (!r.ok) throw new UsageError(`${what} failed: HTTP ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

type AccountView = { availableFen: string; heldFen: string; entries: { kind: string; availableDeltaFen: string; heldDeltaFen: string; reference: string }[] };

async function main(): Promise<void> {
  const info = stackInfo();
  const provider = process.env.PROVIDER === "wechat" ? "wechat" : "alipay";
  const chain = defineChain({ id: info.chainId, name: "local", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [info.rpcUrl] } } });
  const client = createPublicClient({ chain, transport: http(info.rpcUrl), pollingInterval: 200 });

  const account = await toSimpleSmartAccount({
    client,
    owner: privateKeyToAccount(generatePrivateKey()),
    entryPoint: { address: ENTRY_POINT_V07, version: "0.7" },
    factoryAddress: SIMPLE_ACCOUNT_FACTORY_V07,
  });
  console.log(`1. a new SimpleAccount ${account.address}: ${formatEther(await client.getBalance({ address: account.address }))} ETH`);

  const order = await json<{ id: string; qrCode?: string; payUrl?: string }>(
    fetch(`${info.serverUrl}/v1/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ account: account.address, amountFen: 1000, provider }) }),
    "creating the top-up order",
  );
  console.log(`2. top-up order ${order.id} for ¥10.00 through ${provider} (pay at ${order.qrCode ?? order.payUrl})`);
  await json(fetch(`${info.simulatorUrl}/sim/${provider}/trades/${order.id}/pay`, { method: "POST" }), "paying on the simulator");
  const paidBy = Date.now() + 30_000;
  for (;;) {
    const status = await json<{ status: string }>(fetch(`${info.serverUrl}/v1/orders/${order.id}`), "reading the order");
    if (status.status === "paid") break;
    if (Date.now() > paidBy) throw new UsageError(`the order is still ${status.status} after 30 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const before = await json<AccountView>(fetch(`${info.serverUrl}/v1/accounts/${account.address}`), "reading the balance");
  console.log(`   paid; the gateway's signed callback credited the quota: available ${yuan(before.availableFen)}`);

  const smartAccountClient = createSmartAccountClient({
    account,
    client,
    bundlerTransport: http(info.bundlerUrl),
    paymaster: createPaymasterClient({ transport: http(`${info.serverUrl}/rpc`, { fetchOptions: { headers: { "x-api-key": info.apiKey } } }) }),
    pollingInterval: 200,
  });
  console.log("3. sending a sponsored UserOperation through alto (paymaster: our ERC-7677 endpoint) …");
  // a refusal is reported with the paymaster's (or the bundler's) code and reason, not viem's "RPC Request failed."
  const hash = await smartAccountClient.sendUserOperation({ calls: [{ to: "0x000000000000000000000000000000000000dEaD", value: 0n, data: "0x" }] }).catch((error: unknown) => {
    throw new UsageError(describeRpcFailure(error, { paymasterUrl: `${info.serverUrl}/rpc` }));
  });
  const receipt = await smartAccountClient.waitForUserOperationReceipt({ hash, timeout: 60_000 });
  console.log(`   landed in block ${receipt.receipt.blockNumber}: success ${receipt.success}, gas used ${receipt.actualGasUsed}, paid by the paymaster ${formatEther(receipt.actualGasCost)} ETH`);
  console.log(`   the account still holds ${formatEther(await client.getBalance({ address: account.address }))} ETH`);

  console.log("4. waiting for the server to settle it from the chain …");
  const settledBy = Date.now() + 60_000;
  let after: AccountView;
  for (;;) {
    after = await json<AccountView>(fetch(`${info.serverUrl}/v1/accounts/${account.address}`), "reading the balance");
    if (after.entries.some((e) => e.kind === "charge") && BigInt(after.heldFen) === 0n) break;
    if (Date.now() > settledBy) throw new UsageError("not settled within 60 s; is the server's settlement worker running?");
    await new Promise((r) => setTimeout(r, 250));
  }
  const charge = after.entries.find((e) => e.kind === "charge")!;
  const heldEntry = after.entries.find((e) => e.kind === "hold");
  console.log(`   held ${yuan(heldEntry?.heldDeltaFen ?? "0")} (the worst case) while in flight; charged ${yuan(-BigInt(charge.heldDeltaFen))} for ${receipt.actualGasUsed} gas; the rest released
   balance before ${yuan(before.availableFen)} → after ${yuan(after.availableFen)}`);
}

runMain(main);
