/**
 * The approval webhook: a key's owner can have every sponsorship that passed the policy confirmed by their own
 * service first. The one I/O rule of the policy, kept apart so `policy.ts` stays pure.
 *
 * Fail closed unless the owner chose otherwise. Only an HTTP 2xx whose JSON body says `{ "approve": true }`
 * approves. With `failOpen`, the webhook being *unavailable* (timeout, network error, 5xx) approves too, so an
 * outage on their side does not stop their users; anything that is an answer (a 4xx, a body we cannot read, and
 * above all `{ "approve": false }`) is still a refusal. Never throws: the caller gets a decision and a reason.
 */
import type { Address, Hex } from "viem";
import type { ApprovalWebhook } from "./policy";

export type ApprovalPayload = {
  chainId: number;
  sender: Address;
  nonce: bigint;
  callData: Hex;
  maxChargeFen: bigint;
  apiKeyId: string;
  /** The named policy that judged the operation; null: the key's default. */
  policyId?: string | null;
};

export type ApprovalResult = { approved: boolean; reason?: string };

export type AskApprovalOptions = { fetch?: typeof fetch };

/** A webhook answer larger than this is not the small JSON we asked for; stop reading instead of buffering it. */
const MAX_BODY_BYTES = 16 * 1024;
const MAX_REASON_CHARS = 200;

/** POSTs the operation to the key's approval webhook and reads its verdict within `webhook.timeoutMs`. */
export async function askApproval(webhook: ApprovalWebhook, payload: ApprovalPayload, options: AskApprovalOptions = {}): Promise<ApprovalResult> {
  try {
    return await ask(webhook, payload, options.fetch ?? fetch);
  } catch (error) {
    // ask() classifies every failure it expects; reaching here is a bug, which must not approve anything
    return { approved: false, reason: `the approval webhook could not be asked (${describeError(error)})` };
  }
}

async function ask(webhook: ApprovalWebhook, payload: ApprovalPayload, fetchFn: typeof fetch): Promise<ApprovalResult> {
  // the schema checks this too; a webhook built by hand must not turn a bad URL into a "network error" that fails open
  if (!isHttpUrl(webhook.url)) return { approved: false, reason: "the approval webhook URL is not an http(s) URL" };
  const unavailable = (what: string): ApprovalResult =>
    webhook.failOpen ? { approved: true, reason: `approved without the webhook, which fails open: ${what}` } : { approved: false, reason: what };

  const body = JSON.stringify({
    chainId: payload.chainId,
    sender: payload.sender,
    nonce: payload.nonce.toString(),
    callData: payload.callData,
    maxChargeFen: payload.maxChargeFen.toString(),
    apiKeyId: payload.apiKeyId,
    policyId: payload.policyId ?? null,
  });
  const signal = AbortSignal.timeout(webhook.timeoutMs);
  let status: number;
  let text: string | undefined;
  try {
    const exchange = (async () => {
      const response = await fetchFn(webhook.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body,
        signal,
        // a redirect is an answer we did not ask for, not an outage: it must not reach failOpen as a network error
        redirect: "manual",
      });
      return { status: response.status, text: await readSmallBody(response) };
    })();
    // the deadline holds even for an injected fetch that ignores the signal
    ({ status, text } = await Promise.race([exchange, rejectOnAbort(signal)]));
  } catch (error) {
    if (signal.aborted) return unavailable(`the approval webhook did not answer within ${webhook.timeoutMs} ms`);
    return unavailable(`the approval webhook could not be reached (${describeError(error)})`);
  }

  const verdict = text === undefined ? undefined : parseVerdict(text);
  if (verdict?.approve === false) {
    return { approved: false, reason: `the approval webhook refused${verdict.reason ? `: ${verdict.reason}` : ""}` };
  }
  if (status >= 500 && status <= 599) return unavailable(`the approval webhook answered HTTP ${status}`);
  if (status < 200 || status > 299) return { approved: false, reason: `the approval webhook answered HTTP ${status}` };
  if (verdict?.approve === true) return { approved: true };
  const what = text === undefined ? `a body over ${MAX_BODY_BYTES} bytes` : 'a body that is not {"approve": true|false}';
  return { approved: false, reason: `the approval webhook answered HTTP ${status} with ${what}` };
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
}

/** The body as text, or undefined when it is larger than MAX_BODY_BYTES. Aborts with the request's signal. */
async function readSmallBody(response: Response): Promise<string | undefined> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseVerdict(text: string): { approve: boolean; reason?: string } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const { approve, reason } = json as { approve?: unknown; reason?: unknown };
  if (typeof approve !== "boolean") return undefined;
  return typeof reason === "string" && reason.trim() ? { approve, reason: reason.trim().slice(0, MAX_REASON_CHARS) } : { approve };
}

function isHttpUrl(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}

function describeError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === "string") return cause.code;
  if (typeof cause?.message === "string") return cause.message;
  return error instanceof Error ? error.message : String(error);
}
