/**
 * Test support for sponsorship: a real anvil with the canonical EntryPoint, factory and a staked FiatPaymaster,
 * optionally the alto bundler, and the app (in process) on the given database, configured for that chain. The
 * account quota is funded through the ledger (top-ups have their own end-to-end tests).
 */
import type { AddressInfo } from "node:net";
import { type Server, createServer } from "node:http";
import { type Hex, parseEther } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type SimpleAccount, type UserOp, buildUserOperation, newSimpleAccount, signAsAccount, userOpJson } from "../userOperations";
import { type Alto, startAlto } from "../chain/alto";
import { DEV_KEYS, type LocalChain, startLocalChain } from "../chain/localChain";
import { type App, type AppOptions, createApp } from "../../server/app";
import { ENTRY_POINT_V07, type EntryPointVersion } from "../../server/chain/addresses";
import { type Env, loadConfig } from "../../server/config/env";
import type { Database } from "../../server/platform/db/database";
import { createLogger } from "../../server/platform/logger";
import { creditTopUp } from "../../server/ledger/ledger";
import { generateApiKey } from "../../server/sponsorship/apiKeys";
import { type FaultProxy, startFaultProxy } from "./faultProxy";
import { type RpcProxy, startRpcProxy } from "./rpcProxy";

export const UTILITY_KEY: Hex = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"; // anvil #3
export const ADMIN_TOKEN = "test-admin-token-0123456789";

/** Native token priced at ¥20,000: 2,000,000 fen per 1e18 wei, plus 5% markup. */
export const TEST_PRICE = { fenPerNative: 2_000_000n, markupBps: 500 };

export type SponsorStack = {
  chain: LocalChain;
  /** With `rpcFaults`: the TCP fault proxy the app's RPC goes through (the test's own clients talk to anvil). */
  rpcFaults?: FaultProxy;
  /** With `rpcProxy`: the JSON-RPC proxy the app's RPC goes through (method counts, refusals). */
  rpcProxy?: RpcProxy;
  alto?: Alto;
  app: App;
  url: string;
  apiKey: string;
  fund: (account: string, fen: bigint) => Promise<void>;
  stop: () => Promise<void>;
};

export type SponsorStackOptions = {
  db: Database;
  alto?: boolean;
  env?: Env;
  chainOverrides?: Record<string, unknown>;
  app?: Omit<AppOptions, "db">;
  /** Put a TCP fault proxy between the app and anvil (outages and hangs of the RPC). */
  rpcFaults?: boolean;
  /** Put a JSON-RPC proxy between the app and anvil (counts; refusals such as an eth_getLogs range limit). */
  rpcProxy?: boolean;
  /** The EntryPoints the app serves on the chain (default: v0.7 only); each with the local chain's paymaster for it. */
  entryPointVersions?: readonly EntryPointVersion[];
};

export async function startSponsorStack(options: SponsorStackOptions): Promise<SponsorStack> {
  const chain = await startLocalChain({ deposit: parseEther("10") });
  let alto: Alto | undefined;
  let server: Server | undefined;
  let app: App | undefined;
  let rpcFaults: FaultProxy | undefined;
  let rpcProxy: RpcProxy | undefined;
  try {
    if (options.rpcFaults) rpcFaults = await startFaultProxy({ port: chain.anvil.port });
    // with both, the JSON-RPC proxy sits in front of the fault proxy: counts are of what the app asked
    if (options.rpcProxy) rpcProxy = await startRpcProxy(rpcFaults ? `http://127.0.0.1:${rpcFaults.port}` : chain.anvil.rpcUrl);
    const appRpcUrl = rpcProxy?.url ?? (rpcFaults ? `http://127.0.0.1:${rpcFaults.port}` : chain.anvil.rpcUrl);
    if (options.alto) alto = await startAlto({ rpcUrl: chain.anvil.rpcUrl, executorKeys: [DEV_KEYS.bundler], utilityKey: UTILITY_KEY });
    const { key: apiKey } = generateApiKey();
    const config = loadConfig({
      CHAINS: JSON.stringify([
        {
          chainId: chain.anvil.chainId,
          name: "anvil",
          rpcUrl: appRpcUrl,
          bundlerUrl: alto?.url,
          entryPoints: (options.entryPointVersions ?? ["0.7"]).map((version) => ({ version, paymaster: chain.paymasters[version] })),
          fenPerNative: TEST_PRICE.fenPerNative.toString(),
          markupBps: TEST_PRICE.markupBps,
          confirmations: 0,
          ...options.chainOverrides,
        },
      ]),
      SIGNER_PRIVATE_KEY: DEV_KEYS.signer,
      BOOTSTRAP_API_KEY: apiKey,
      ADMIN_TOKEN,
      RECONCILE: "off",
      RECONCILE_DAILY: "off",
      SETTLE_INTERVAL_MS: "200",
      DEPOSIT_CHECK_INTERVAL_MS: "500",
      LOG_LEVEL: "silent",
      ...options.env,
    });
    app = await createApp(config, { db: options.db, log: createLogger(config.logLevel), ...options.app });
    const listening = createServer(app.handler).listen(0, "127.0.0.1");
    server = listening;
    await new Promise<void>((resolve) => listening.once("listening", () => resolve()));
    const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
    const started = app;
    return {
      chain,
      rpcFaults,
      rpcProxy,
      alto,
      app: started,
      url,
      apiKey,
      fund: async (account, fen) => {
        await options.db.transaction((tx) => creditTopUp(tx, { account, orderId: `test-${account}-${Date.now()}-${Math.random()}`, amountFen: fen }));
      },
      stop: async () => {
        listening.closeAllConnections();
        await new Promise<void>((resolve) => listening.close(() => resolve()));
        await started.close();
        await alto?.stop();
        await rpcFaults?.close();
        await rpcProxy?.close();
        await chain.stop();
      },
    };
  } catch (error) {
    server?.close();
    await app?.close();
    await alto?.stop();
    await rpcFaults?.close();
    await rpcProxy?.close();
    await chain.stop();
    throw error;
  }
}

export const signerAddress = () => privateKeyToAccount(DEV_KEYS.signer).address;

/**
 * A signed, sponsored operation: built like a wallet would (for a new account funded with `fundFen`, or for
 * `options.account`), sponsored through POST /v1/sponsorships (the server signs and holds), then signed by the
 * account's owner. Ready for `handleOps`. `options.change` alters the built operation before it is sponsored
 * (other gas: another userOpHash for the same nonce).
 */
export async function sponsoredOperation(
  stack: SponsorStack,
  fundFen: bigint,
  options: { account?: SimpleAccount; change?: Partial<UserOp> } = {},
): Promise<{ op: UserOp; account: string; simpleAccount: SimpleAccount; userOpHash: Hex; holdId: string; maxChargeFen: bigint; validUntil: number }> {
  const account = options.account ?? (await newSimpleAccount(stack.chain.client));
  if (fundFen > 0n) await stack.fund(account.address, fundFen);
  const built = await buildUserOperation(stack.chain.client, account, { calls: [{ to: stack.chain.paymaster, data: "0x" }], paymaster: stack.chain.paymaster });
  const op = { ...built, ...options.change };
  const response = await fetch(`${stack.url}/v1/sponsorships`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": stack.apiKey },
    body: JSON.stringify({
      chainId: stack.chain.anvil.chainId,
      entryPoint: ENTRY_POINT_V07,
      userOp: userOpJson(op),
    }),
  });
  if (response.status !== 201) throw new Error(`POST /v1/sponsorships answered ${response.status}: ${await response.text()}`);
  const body = (await response.json()) as { paymasterData: Hex; userOpHash: Hex; holdId: string; validUntil: number; quote: { maxChargeFen: string } };
  const signed = await signAsAccount(account, { ...op, paymasterData: body.paymasterData }, stack.chain.anvil.chainId);
  return {
    op: signed,
    account: account.address.toLowerCase(),
    simpleAccount: account,
    userOpHash: body.userOpHash,
    holdId: body.holdId,
    maxChargeFen: BigInt(body.quote.maxChargeFen),
    validUntil: body.validUntil,
  };
}
