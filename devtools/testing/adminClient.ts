/**
 * Test support for the admin API: the real app (createApp) on a given database, listening on 127.0.0.1, and a
 * small client that sends the admin token.
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type App, createApp } from "../../server/app";
import { type Env, loadConfig } from "../../server/config/env";
import type { Database } from "../../server/platform/db/database";

export const TEST_ADMIN_TOKEN = "admin-test-token-0123456789";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON answers
export type Answer = { status: number; body: any; headers: Headers };

export type AdminClient = {
  url: string;
  /** `token: null` sends no Authorization header; a string sends that token instead of the admin token. */
  request: (method: string, path: string, options?: { body?: unknown; token?: string | null; headers?: Record<string, string> }) => Promise<Answer>;
  get: (path: string) => Promise<Answer>;
  post: (path: string, body: unknown, headers?: Record<string, string>) => Promise<Answer>;
};

export function adminClient(url: string, token: string): AdminClient {
  const request: AdminClient["request"] = async (method, path, options = {}) => {
    const presented = options.token === undefined ? token : options.token;
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        ...(presented === null ? {} : { authorization: `Bearer ${presented}` }),
        ...options.headers,
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body, headers: response.headers };
  };
  return { url, request, get: (path) => request("GET", path), post: (path, body, headers) => request("POST", path, { body, headers }) };
}

/** The whole service without payment gateways or chains, with the admin token set (or as `env` says). */
export async function startAdminApp(db: Database, env: Env = {}): Promise<{ app: App; client: AdminClient; stop: () => Promise<void> }> {
  const config = loadConfig({ ADMIN_TOKEN: TEST_ADMIN_TOKEN, RECONCILE: "off", RECONCILE_DAILY: "off", LOG_LEVEL: "silent", ...env });
  const app = await createApp(config, { db });
  const server: Server = createServer(app.handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    app,
    client: adminClient(url, TEST_ADMIN_TOKEN),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
    },
  };
}
