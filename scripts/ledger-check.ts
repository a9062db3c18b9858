/**
 * `npm run ledger:check`: recomputes every balance from the ledger entries and reports any account whose
 * cached balance differs. Exit code 0 when clean, 1 on a mismatch. Uses DATABASE_URL, else the PGlite folder
 * DATA_DIR (default .data/pglite) — the same database the server uses.
 */
import path from "node:path";
import { openDatabase } from "../server/platform/db/database";
import { migrate } from "../server/platform/db/migrate";
import { checkLedger } from "../server/ledger/ledger";
import { runMain } from "./lib/cli";

async function main(): Promise<number> {
  const db = await openDatabase({ databaseUrl: process.env.DATABASE_URL, dataDir: path.resolve(process.env.DATA_DIR ?? ".data/pglite") });
  try {
    await migrate(db);
    const result = await checkLedger(db);
    console.log(`checked ${result.accounts} accounts and ${result.entries} ledger entries (${db.kind})`);
    if (result.mismatches.length === 0) {
      console.log("ledger clean: every cached balance equals the sum of its entries");
      return 0;
    }
    for (const m of result.mismatches) {
      console.log(
        `MISMATCH ${m.account}: available cached ${m.cachedAvailableFen} vs ledger ${m.ledgerAvailableFen}, held cached ${m.cachedHeldFen} vs ledger ${m.ledgerHeldFen}`,
      );
    }
    return 1;
  } finally {
    await db.close();
  }
}

runMain(main);
