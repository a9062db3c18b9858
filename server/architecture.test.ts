/**
 * docs/architecture.md states who owns which table and which folders there are; these tests hold the code to it,
 * so the page a newcomer reads first stays true.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

const ROOT = path.resolve(__dirname, "..");
const architecture = readFileSync(path.join(ROOT, "docs/architecture.md"), "utf8");
const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? files(full) : [full];
  });
}

const productionSources = files(path.join(ROOT, "server")).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));

describe("docs/architecture.md", () => {
  it("names the one module that writes each table, and no other module writes it", () => {
    const migrations = files(path.join(ROOT, "server/platform/db/migrations")).map((f) => readFileSync(f, "utf8"));
    const tables = migrations.flatMap((sql) => [...sql.matchAll(/CREATE TABLE (\w+)/g)].map((m) => m[1]!));
    assert.ok(tables.length >= 10, "the migrations define the tables");
    const documented = new Map([...architecture.matchAll(/^\| `(\w+)` \| `([^`]+)` \|$/gm)].map((m) => [m[1]!, m[2]!]));
    for (const table of tables) {
      const writes = new RegExp(`\\b(INSERT INTO|UPDATE|DELETE FROM)\\s+${table}\\b`);
      const writers = productionSources.filter((f) => writes.test(readFileSync(f, "utf8"))).map((f) => path.relative(ROOT, f));
      assert.deepEqual(writers, [documented.get(table)], `table ${table}: written by ${writers.join(", ") || "nothing"}; the page says ${documented.get(table) ?? "nothing"}`);
    }
  });

  it("and the README's layout table name every folder of server/ and devtools/", () => {
    for (const top of ["server", "devtools"]) {
      for (const name of readdirSync(path.join(ROOT, top))) {
        if (!statSync(path.join(ROOT, top, name)).isDirectory()) continue;
        const folder = `${top}/${name}/`;
        assert.ok(architecture.includes(`\`${folder}\``), `docs/architecture.md does not describe ${folder}`);
        assert.ok(readme.includes(`\`${folder}\``), `the README's layout table does not name ${folder}`);
      }
    }
  });
});
