/** The server's HTTP API as the pages use it (same origin). Money arrives as decimal strings of fen. */
// The answers' types come from the zod response schemas the server builds its answers through and generates its
// OpenAPI document from (type-only imports: erased from the bundle, nothing of the server is shipped).
import type { AccountView } from "../../server/schemas/accounts";
import type { PublicConfig } from "../../server/schemas/common";
import type { OrderView as Order, createOrderRequest } from "../../server/schemas/payments";
import type { z } from "zod";

export type { AccountView, Order, PublicConfig };
/** What `POST /v1/orders` takes, as a JSON client sends it. */
export type CreateOrderRequest = z.input<typeof createOrderRequest>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const parsed = text ? (JSON.parse(text) as { detail?: string }) : {};
  if (!response.ok) throw new ApiError(response.status, parsed.detail ?? `HTTP ${response.status}`);
  return parsed as T;
}

export const api = {
  config: () => request<PublicConfig>("GET", "/v1/config"),
  createOrder: (p: CreateOrderRequest & { amountFen: number }) => request<Order>("POST", "/v1/orders", p),
  order: (id: string) => request<Order>("GET", `/v1/orders/${encodeURIComponent(id)}`),
  account: (address: string) => request<AccountView>("GET", `/v1/accounts/${address}`),
};

/** "1234" fen → "12.34". */
export function yuan(fen: string | number | bigint): string {
  const n = BigInt(fen);
  const sign = n < 0n ? "-" : "";
  const abs = n < 0n ? -n : n;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
}

/** "12.3" yuan → 1230 fen; undefined if it is not a positive amount with at most two decimals. */
export function parseYuan(text: string): number | undefined {
  const m = /^\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * 100 + Number((m[2] ?? "").padEnd(2, "0"));
}
