/**
 * API keys of the DApps that ask for sponsorship. A key is `fpk_<id>_<secret>`; only SHA-256(key) is stored,
 * so a database leak does not leak usable keys. Lookups are cached for a few seconds (the hot path must not
 * read the table per request); a revocation takes effect everywhere within that time.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Queryable } from "../platform/db/database";
import { AppError } from "../platform/errors";
import { type Policy, parsePolicy, policyToJson } from "./policy";

export type ApiKey = { id: string; name: string; policy: Policy; createdAt: Date; revokedAt: Date | null };

export class ApiKeyInputError extends AppError {
  override name = "ApiKeyInputError";
  constructor(message: string) {
    super(400, "invalid_request", message);
  }
}

const KEY_PATTERN = /^fpk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** A new random key; `id` is public (logs, dashboards), the whole key is the secret. */
export function generateApiKey(): { id: string; key: string } {
  const id = randomBytes(6).toString("hex");
  return { id, key: `fpk_${id}_${randomBytes(32).toString("base64url")}` };
}

type Row = { id: string; name: string; policy: unknown; created_at: Date; revoked_at: Date | null };
const toApiKey = (r: Row): ApiKey => ({ id: r.id, name: r.name, policy: parsePolicy(r.policy), createdAt: r.created_at, revokedAt: r.revoked_at });

/**
 * Stores a key. Pass `key` to install a known one (the local stack's demo key); otherwise one is generated.
 * Returns the key itself once: it cannot be read back.
 */
export async function createApiKey(db: Queryable, p: { name: string; policy?: unknown; key?: string }): Promise<{ apiKey: ApiKey; key: string }> {
  if (!p.name?.trim()) throw new ApiKeyInputError("an API key needs a name");
  const policy = parsePolicy(p.policy ?? {});
  let generated = generateApiKey();
  if (p.key !== undefined) {
    const match = KEY_PATTERN.exec(p.key);
    if (!match) throw new ApiKeyInputError("an API key must look like fpk_<12 hex>_<43 base64url characters>");
    generated = { id: match[1]!, key: p.key };
  }
  const { rows } = await db.query<Row>(
    `INSERT INTO api_keys (id, name, key_hash, policy) VALUES ($1, $2, $3, $4)
     ON CONFLICT (key_hash) DO UPDATE SET name = api_keys.name
     RETURNING id, name, policy, created_at, revoked_at`,
    [generated.id, p.name.trim(), hashApiKey(generated.key), JSON.stringify(policyToJson(policy))],
  );
  return { apiKey: toApiKey(rows[0]!), key: generated.key };
}

export async function revokeApiKey(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", [id]);
  return rowCount > 0;
}

export async function updateApiKeyPolicy(db: Queryable, id: string, policy: unknown): Promise<ApiKey | undefined> {
  const parsed = parsePolicy(policy);
  const { rows } = await db.query<Row>("UPDATE api_keys SET policy = $2 WHERE id = $1 RETURNING id, name, policy, created_at, revoked_at", [id, JSON.stringify(policyToJson(parsed))]);
  return rows[0] ? toApiKey(rows[0]) : undefined;
}

export async function listApiKeys(db: Queryable): Promise<ApiKey[]> {
  const { rows } = await db.query<Row>("SELECT id, name, policy, created_at, revoked_at FROM api_keys ORDER BY created_at");
  return rows.map(toApiKey);
}

/** Finds the live key for a presented secret, through a short cache (misses are cached too). */
export function createApiKeyAuthenticator(db: Queryable, options: { ttlMs?: number } = {}) {
  const ttlMs = options.ttlMs ?? 5_000;
  const cache = new Map<string, { at: number; key: Promise<ApiKey | undefined> }>();
  return async (presented: string | undefined): Promise<ApiKey | undefined> => {
    if (!presented || !KEY_PATTERN.test(presented)) return undefined;
    const hash = hashApiKey(presented);
    const hit = cache.get(hash);
    if (hit && Date.now() - hit.at < ttlMs) return hit.key;
    const key = db
      .query<Row>("SELECT id, name, policy, created_at, revoked_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", [hash])
      .then(({ rows }) => (rows[0] ? toApiKey(rows[0]) : undefined));
    if (cache.size > 10_000) cache.clear();
    cache.set(hash, { at: Date.now(), key });
    key.catch(() => cache.delete(hash));
    return key;
  };
}
