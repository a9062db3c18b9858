/**
 * `npm run api-keys -- <command>`: manage the API keys DApps use to ask for sponsorship, directly in the
 * database (DATABASE_URL, else the PGlite folder DATA_DIR — stop the server first: PGlite is single-process;
 * against a running server use the admin API, POST /admin/api-keys).
 *
 *   create --name <name> [--policy <file.json>]   prints the key once (only its SHA-256 is stored)
 *   list                                          ids, names, policies, revocation times
 *   policy <id> <file.json>                       replaces a key's policy
 *   revoke <id>                                   the key stops working within the servers' 5 s key cache
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { openDatabase } from "../server/platform/db/database";
import { migrate } from "../server/platform/db/migrate";
import { createApiKey, listApiKeys, revokeApiKey, updateApiKeyPolicy } from "../server/sponsorship/apiKeys";
import { policyToJson } from "../server/sponsorship/policy";
import { UsageError, runMain } from "./lib/cli";

const USAGE = "usage: npm run api-keys -- create --name <name> [--policy <file.json>] | list | policy <id> <file.json> | revoke <id>";

function readPolicy(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new UsageError(`cannot read the policy file ${file}: ${(error as Error).message}`);
  }
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const value = args[i + 1];
  if (!value || value.startsWith("--")) throw new UsageError(`--${name} needs a value`);
  return value;
}

export async function apiKeysCli(args: string[], env: NodeJS.ProcessEnv, out: (line: string) => void): Promise<number> {
  const [command, ...rest] = args;
  if (!command || !["create", "list", "policy", "revoke"].includes(command)) throw new UsageError(USAGE);
  // check the arguments before opening the database
  const name = command === "create" ? option(rest, "name") : undefined;
  if (command === "create" && !name) throw new UsageError("create needs --name <name>");
  const policy = command === "create" ? (option(rest, "policy") ? readPolicy(option(rest, "policy")!) : undefined) : command === "policy" ? (rest[1] ? readPolicy(rest[1]) : undefined) : undefined;
  if ((command === "revoke" || command === "policy") && !rest[0]) throw new UsageError(`${command} needs a key id (see \`list\`)`);
  if (command === "policy" && policy === undefined) throw new UsageError("policy needs <id> <file.json>");

  const db = await openDatabase({ databaseUrl: env.DATABASE_URL || undefined, dataDir: path.resolve(env.DATA_DIR ?? ".data/pglite"), poolSize: 2 });
  try {
    await migrate(db);
    if (command === "create") {
      const { apiKey, key } = await createApiKey(db, { name: name!, policy });
      out(`created API key ${apiKey.id} (${apiKey.name})`);
      out(`key: ${key}`);
      out("it is shown once; only its hash is stored");
    } else if (command === "list") {
      const keys = await listApiKeys(db);
      if (keys.length === 0) out("no API keys");
      for (const k of keys) out(`${k.id}  ${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : "live"}  ${k.name}  policy ${JSON.stringify(policyToJson(k.policy))}`);
    } else if (command === "policy") {
      const updated = await updateApiKeyPolicy(db, rest[0]!, policy);
      if (!updated) throw new UsageError(`no API key ${rest[0]}`);
      out(`policy of ${updated.id} is now ${JSON.stringify(policyToJson(updated.policy))}`);
    } else {
      if (!(await revokeApiKey(db, rest[0]!))) throw new UsageError(`no live API key ${rest[0]}`);
      out(`revoked ${rest[0]}`);
    }
    return 0;
  } finally {
    await db.close();
  }
}

if (require.main === module) runMain(() => apiKeysCli(process.argv.slice(2), process.env, (line) => console.log(line)));
