/**
 * The demo DApp: a smart account whose owner key lives in this browser (localStorage), sending UserOperations
 * through the bundler with permissionless, sponsored by our ERC-7677 endpoint — exactly what a DApp would do. The
 * account type is the user's pick: SimpleAccount on EntryPoint v0.7 or v0.8, or the owner key's own address as an
 * EIP-7702 EOA delegating to Simple7702Account on v0.8 or v0.9 (its first operation signs the authorization).
 * It reads the chain, bundler and demo API key from /v1/config, which offers them only in sandbox mode.
 *
 * The page talks to the paymaster server it was served from, or to the one `?server=` names: a real DApp lives on
 * its own origin and calls the paymaster cross-origin (CORS), which this lets the page show (and the tests prove).
 * A refusal is shown with the paymaster's reason and message (rpcError.ts), never as viem's "RPC Request failed.".
 */
import { createSmartAccountClient } from "permissionless";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Address, type Hex, type PublicClient, type SignedAuthorization, createPublicClient, defineChain, formatEther, http } from "viem";
import { type SmartAccount, createPaymasterClient, entryPoint07Address, entryPoint08Address, toSimple7702SmartAccount } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { type AccountView, type PublicConfig, yuan } from "./api";
import { describeRpcFailure } from "./rpcError";

const KEY_STORAGE = "fiat-paymaster-demo-owner-key";
const TYPE_STORAGE = "fiat-paymaster-demo-account-type";
const FACTORY = "0x91E60e0613810449d098b0b5Ec8b51A0FE8c8985";

type AccountType = "simple-0.7" | "simple-0.8" | "7702-0.8" | "7702-0.9";
const ACCOUNT_TYPES: Record<AccountType, { version: "0.7" | "0.8" | "0.9"; eip7702: boolean }> = {
  "simple-0.7": { version: "0.7", eip7702: false },
  "simple-0.8": { version: "0.8", eip7702: false },
  "7702-0.8": { version: "0.8", eip7702: true },
  "7702-0.9": { version: "0.9", eip7702: true },
};

function accountType(): AccountType {
  const stored = localStorage.getItem(TYPE_STORAGE);
  return stored && stored in ACCOUNT_TYPES ? (stored as AccountType) : "simple-0.7";
}

async function makeAccount(client: PublicClient, type: AccountType, key: Hex): Promise<SmartAccount> {
  const owner = privateKeyToAccount(key);
  if (type === "7702-0.8" || type === "7702-0.9") return toSimple7702SmartAccount({ client, owner, entryPoint: ACCOUNT_TYPES[type].version as "0.8" | "0.9" });
  if (type === "simple-0.8") return (await toSimpleSmartAccount({ client, owner, entryPoint: { address: entryPoint08Address, version: "0.8" } })) as unknown as SmartAccount;
  return (await toSimpleSmartAccount({ client, owner, entryPoint: { address: entryPoint07Address, version: "0.7" }, factoryAddress: FACTORY })) as unknown as SmartAccount;
}
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The paymaster server: ?server=<http(s) origin>, else the origin this page came from. */
function serverOrigin(): string {
  const named = new URLSearchParams(location.search).get("server");
  if (!named) return location.origin;
  const url = new URL(named);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`?server= must be an http(s) URL: got ${named}`);
  return url.origin;
}

function ownerKey(fresh = false): Hex {
  const stored = localStorage.getItem(KEY_STORAGE);
  if (stored && !fresh && /^0x[0-9a-f]{64}$/.test(stored)) return stored as Hex;
  const key = generatePrivateKey();
  localStorage.setItem(KEY_STORAGE, key);
  return key;
}

function fail(message: string): void {
  const el = $<HTMLParagraphElement>("error");
  el.textContent = message;
  el.hidden = false;
}

async function accountView(server: string, address: string): Promise<AccountView> {
  const response = await fetch(`${server}/v1/accounts/${address}`);
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  return (await response.json()) as AccountView;
}

async function main(): Promise<void> {
  const server = serverOrigin();
  const config = (await (await fetch(`${server}/v1/config`)).json()) as PublicConfig;
  const chainConfig = config.chains[0];
  if (!config.sandbox || !chainConfig?.rpcUrl || !chainConfig.bundlerUrl || !config.demoApiKey) {
    return fail("The demo DApp needs the local stack (npm start): this server does not offer a demo chain, bundler and API key.");
  }
  const chain = defineChain({ id: chainConfig.chainId, name: chainConfig.name, nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [chainConfig.rpcUrl] } } });
  const client = createPublicClient({ chain, transport: http(chainConfig.rpcUrl), pollingInterval: 250 });
  const type = accountType();
  const picker = $<HTMLSelectElement>("account-type");
  const served = new Set((chainConfig.entryPoints ?? []).map((ep) => ep.version));
  for (const option of picker.options) option.disabled = !served.has(ACCOUNT_TYPES[option.value as AccountType].version);
  picker.value = type;
  picker.addEventListener("change", () => {
    localStorage.setItem(TYPE_STORAGE, picker.value);
    location.reload();
  });
  const key = ownerKey();
  const account = await makeAccount(client as PublicClient, type, key);
  $("address").textContent = account.address;
  $<HTMLAnchorElement>("checkout-link").href = `${server}/checkout?account=${account.address}`;

  const refresh = async () => {
    const [eth, view] = await Promise.all([client.getBalance({ address: account.address }), accountView(server, account.address)]);
    $("eth").textContent = `${formatEther(eth)} ETH`;
    $("quota").textContent = `¥${yuan(view.availableFen)} available, ¥${yuan(view.heldFen)} held`;
    $<HTMLButtonElement>("send").disabled = BigInt(view.availableFen) === 0n;
    return view;
  };
  await refresh();
  const timer = window.setInterval(() => void refresh().catch(() => {}), 3_000);

  const smartAccountClient = createSmartAccountClient({
    account,
    client,
    bundlerTransport: http(chainConfig.bundlerUrl),
    paymaster: createPaymasterClient({ transport: http(`${server}/rpc`, { fetchOptions: { headers: { "x-api-key": config.demoApiKey } } }) }),
    pollingInterval: 250,
  });

  $<HTMLButtonElement>("send").addEventListener("click", async () => {
    const button = $<HTMLButtonElement>("send");
    button.disabled = true;
    $<HTMLParagraphElement>("error").hidden = true;
    const status = $("status");
    try {
      status.textContent = "Asking the paymaster and sending through the bundler…";
      // the account view shows amounts, kinds and times: a charge newer than this one is the settlement
      const newest = (await refresh()).entries[0]?.createdAt ?? "";
      // an EOA that does not delegate to this account type's implementation yet (not at all, or to another
      // EntryPoint's) signs its EIP-7702 authorization first; it rides with the operation and its 0x7702 marker
      const delegate = (account as { authorization?: { address: Address } }).authorization?.address;
      let authorization: SignedAuthorization | undefined;
      if (ACCOUNT_TYPES[type].eip7702 && delegate) {
        const code = await client.getCode({ address: account.address });
        const current = code?.toLowerCase().startsWith("0xef0100") ? `0x${code.slice(8)}` : undefined;
        if (current?.toLowerCase() !== delegate.toLowerCase()) {
          const eoa = privateKeyToAccount(key);
          authorization = await eoa.signAuthorization({ chainId: chainConfig.chainId, address: delegate, nonce: await client.getTransactionCount({ address: eoa.address }) });
        }
      }
      const hash = await smartAccountClient.sendUserOperation({
        calls: [{ to: "0x000000000000000000000000000000000000dEaD", value: 0n, data: "0x" }],
        ...(authorization ? { authorization, factory: "0x7702", factoryData: "0x" } : {}),
      });
      $("result").hidden = false;
      $("user-op-hash").textContent = hash;
      $("charged").textContent = "waiting for settlement…";
      status.textContent = "Sent; waiting for it to land…";
      const receipt = await smartAccountClient.waitForUserOperationReceipt({ hash, timeout: 60_000 });
      $("tx-hash").textContent = receipt.receipt.transactionHash;
      $("gas-used").textContent = `${receipt.actualGasUsed} gas (${formatEther(receipt.actualGasCost)} ETH, paid by the paymaster)`;
      status.textContent = receipt.success ? "Landed. Waiting for the server to settle it…" : "Landed, but the call reverted (it is still charged).";
      for (let i = 0; i < 120; i++) {
        const view = await refresh();
        const charges = view.entries.filter((e) => e.kind === "charge" && e.createdAt > newest);
        if (charges.length > 0 && BigInt(view.heldFen) === 0n) {
          const charged = charges.reduce((sum, e) => sum - BigInt(e.heldDeltaFen) - BigInt(e.availableDeltaFen), 0n);
          $("charged").textContent = `¥${yuan(charged)}`;
          status.textContent = "Settled: charged what the chain actually spent.";
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    } catch (error) {
      fail(describeRpcFailure(error, { paymasterUrl: `${server}/rpc` }));
      status.textContent = "";
    } finally {
      await refresh().catch(() => {});
    }
  });
  $<HTMLButtonElement>("new-account").addEventListener("click", () => {
    window.clearInterval(timer);
    ownerKey(true);
    location.reload();
  });
}

main().catch((error: unknown) => fail((error as Error).message));
