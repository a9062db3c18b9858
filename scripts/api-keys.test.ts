import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { openDatabase } from "../server/platform/db/database";
import { createApiKeyAuthenticator } from "../server/sponsorship/apiKeys";
import { apiKeysCli } from "./api-keys";

describe("npm run api-keys", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "fp-api-keys-"));
  const env = { DATABASE_URL: "", DATA_DIR: path.join(dir, "pglite") };
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = async (...args: string[]) => {
    const lines: string[] = [];
    await apiKeysCli(args, env, (l) => lines.push(l));
    return lines;
  };

  it("creates a key with a policy, lists it, stores only its hash, and revokes it", async () => {
    const policyFile = path.join(dir, "policy.json");
    writeFileSync(policyFile, JSON.stringify({ maxChargePerOpFen: 500, blockedSenders: ["0x000000000000000000000000000000000000dead"] }));
    const created = await run("create", "--name", "shop", "--policy", policyFile);
    const key = /^key: (fpk_\S+)$/.exec(created[1]!)?.[1];
    assert.ok(key, created.join("\n"));
    const id = /created API key (\w+)/.exec(created[0]!)![1]!;
    const listed = (await run("list")).join("\n");
    assert.match(listed, new RegExp(`${id}  live  shop  policy .*"maxChargePerOpFen":"500"`));

    const db = await openDatabase({ dataDir: env.DATA_DIR });
    try {
      const { rows } = await db.query<{ key_hash: string }>("SELECT key_hash FROM api_keys WHERE id = $1", [id]);
      assert.match(rows[0]!.key_hash, /^[0-9a-f]{64}$/);
      assert.ok(!rows[0]!.key_hash.includes(key.slice(20)), "the secret itself is not stored");
      assert.equal((await createApiKeyAuthenticator(db)(key))?.id, id);
    } finally {
      await db.close();
    }
    assert.deepEqual(await run("revoke", id), [`revoked ${id}`]);
    assert.match((await run("list")).join("\n"), new RegExp(`${id}  revoked `));
    await assert.rejects(run("revoke", id), /no live API key/);
  });

  it("refuses bad arguments before touching the database, with one line naming the problem", async () => {
    await assert.rejects(run(), /usage: npm run api-keys/);
    await assert.rejects(run("create"), /create needs --name/);
    await assert.rejects(run("create", "--name", "x", "--policy", path.join(dir, "missing.json")), /cannot read the policy file/);
    await assert.rejects(run("revoke"), /revoke needs a key id/);
  });

  it("refuses a policy with an unknown or bad field, naming it", async () => {
    const bad = path.join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ maxChargePerOp: 5 }));
    await assert.rejects(run("create", "--name", "x", "--policy", bad), /maxChargePerOp/);
  });
});
