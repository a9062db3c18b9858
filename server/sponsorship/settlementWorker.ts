/**
 * The settlement worker, run by every instance: settlement (with expired-hold release, on chain time, in the same
 * pass) under a Postgres advisory lock per chain, so exactly one instance settles a chain at a time and no
 * instance can release holds while the settling one is stuck. (The deposit monitor is `depositMonitor.ts`.)
 */
import type { Database } from "../platform/db/database";
import type { Logger } from "../platform/logger";
import type { Metrics } from "../platform/metrics";
import { type Worker, every } from "../platform/every";
import { releaseOrphanedHolds } from "./holds";
import type { ChainRuntime } from "../chain/chainRuntime";
import { settleChain } from "./settlement";

/** Advisory lock keys: "fpsettle" ‖ chain id; "fporphan" for holds of chains no longer configured. */
const SETTLE_LOCK_BASE = 0x6670736574000000n;
const ORPHAN_LOCK = 0x66706f727068616en;
/** A hold of a chain removed from CHAINS is released this long after its validUntil (server clock). */
export const ORPHANED_HOLD_SECONDS = 7 * 86_400;

export type SettlementWorkerOptions = {
  db: Database;
  chains: readonly ChainRuntime[];
  log: Logger;
  metrics?: Metrics;
  intervalMs: number;
  holdGraceSeconds: number;
};

export function startSettlementWorker(options: SettlementWorkerOptions): Worker {
  const { db, log, metrics } = options;
  return every(options.intervalMs, async () => {
    for (const chain of options.chains) {
      try {
        await db.withAdvisoryLock(SETTLE_LOCK_BASE + BigInt(chain.config.chainId), (signal) =>
          settleChain(db, chain, { log, metrics, holdGraceSeconds: options.holdGraceSeconds, signal }),
        );
      } catch (error) {
        metrics?.settlementPassErrors.inc({ chain: String(chain.config.chainId) });
        log.warn({ chainId: chain.config.chainId, err: (error as Error).message?.split("\n")[0] }, "settlement pass failed; no hold is released until it succeeds; retrying next tick");
      }
    }
    try {
      const orphans = await db.withAdvisoryLock(ORPHAN_LOCK, () =>
        releaseOrphanedHolds(db, { configuredChainIds: options.chains.map((c) => c.config.chainId), olderThanSeconds: ORPHANED_HOLD_SECONDS }),
      );
      if (orphans.acquired && orphans.result > 0) log.warn({ released: orphans.result }, "holds of chains no longer configured released, a week past their validUntil");
    } catch (error) {
      log.warn({ err: (error as Error).message?.split("\n")[0] }, "releasing holds of unconfigured chains failed; retrying next tick");
    }
  });
}
