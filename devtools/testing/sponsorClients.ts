/**
 * Test support for sponsorship through the wallet's own tools: API keys with a policy (the admin API), a
 * permissionless smart-account client whose paymaster is our ERC-7677 /rpc and whose bundler is the stack's alto,
 * and the JSON-RPC error viem surfaces when we refuse.
 */
import { createSmartAccountClient } from "permissionless";
import { http } from "viem";
import { type SmartAccount, createPaymasterClient } from "viem/account-abstraction";
import { ADMIN_TOKEN, type SponsorStack } from "./sponsorStack";

/** A new API key with `policy`, created through POST /admin/api-keys; its secret. */
export async function createApiKey(stack: SponsorStack, policy: Record<string, unknown> = {}, name = "test"): Promise<string> {
  const response = await fetch(`${stack.url}/admin/api-keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ name, policy }),
  });
  if (response.status !== 201) throw new Error(`POST /admin/api-keys answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { key: string }).key;
}

/** `account`'s client as a DApp builds it: alto bundles, our /rpc (with `apiKey`, the stack's own by default) sponsors. */
export function sponsoredAccountClient<account extends SmartAccount>(stack: SponsorStack, account: account, apiKey = stack.apiKey) {
  if (!stack.alto) throw new Error("the stack was started without alto");
  return createSmartAccountClient({
    account,
    client: stack.chain.client,
    bundlerTransport: http(stack.alto.url),
    paymaster: createPaymasterClient({ transport: http(`${stack.url}/rpc?apikey=${apiKey}`) }),
    pollingInterval: 100,
  });
}

/** The JSON-RPC error viem surfaces for a refusal: its code (ours are ≤ -32100) and every message in the cause chain. */
export function rpcErrorOf(error: unknown): { code?: number; message: string } {
  let e = error as { code?: number; message?: string; cause?: unknown; details?: string } | undefined;
  const text: string[] = [];
  let code: number | undefined;
  while (e) {
    if (typeof e.code === "number" && e.code <= -32100) code ??= e.code;
    text.push(e.details ?? "", e.message ?? "");
    e = e.cause as typeof e;
  }
  return { code, message: text.join(" | ") };
}
