/**
 * The chain workers, run by every instance: settlement (with expired-hold release, on chain time, in the same
 * pass) under a Postgres advisory lock per chain, so exactly one instance settles a chain at a time and no
 * instance can release holds while the settling one is stuck; and the deposit monitor, which only reads and so
 * runs everywhere (each instance must know whether to refuse sponsorship).
 */
import { parseAbi } from "viem";
import type { Database } from "../platform/db/database";
import type { Logger } from "../platform/logger";
import type { Metrics } from "../platform/metrics";
import { outstandingHoldsWei, releaseOrphanedHolds } from "./holds";
import type { ChainRuntime } from "../chain/chainRuntime";
import { settleChain } from "./settlement";

/** Advisory lock keys: "fpsettle" ‖ chain id; "fporphan" for holds of chains no longer configured. */
const SETTLE_LOCK_BASE = 0x6670736574000000n;
const ORPHAN_LOCK = 0x66706f727068616en;
/** A hold of a chain removed from CHAINS is released this long after its validUntil (server clock). */
export const ORPHANED_HOLD_SECONDS = 7 * 86_400;

export type Worker = { stop: () => Promise<void>; tick: () => Promise<void> };

/** Runs `tick` every `intervalMs` (or as long as `intervalMs()` says after each tick; never two at once); `stop` waits for the running tick. */
export function every(intervalMs: number | (() => number), tick: () => Promise<void>): Worker {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const run = () => {
    running = tick().finally(() => {
      if (!stopped) timer = setTimeout(run, typeof intervalMs === "number" ? intervalMs : intervalMs());
    });
  };
  timer = setTimeout(run, 0);
  return {
    tick: async () => {
      await running;
      await tick();
    },
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

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

const entryPointAbi = parseAbi(["function balanceOf(address account) view returns (uint256)"]);

/**
 * Reads each paymaster's EntryPoint deposit and the worst case of its open holds. Sponsorship stops on a chain
 * while deposit − outstanding < minDepositWei (or the deposit cannot be read for three intervals): the
 * paymaster must never sign what its deposit cannot pay.
 */
export async function checkDeposit(db: Database, chain: ChainRuntime, options: { log?: Logger; metrics?: Metrics; staleAfterMs?: number } = {}): Promise<void> {
  const { config } = chain;
  const label = { chain: String(config.chainId) };
  const before = chain.deposit.healthy;
  try {
    const [depositWei, outstandingWei, open] = await Promise.all([
      chain.client.readContract({ address: config.entryPoint, abi: entryPointAbi, functionName: "balanceOf", args: [config.paymaster] }),
      outstandingHoldsWei(db, config.chainId),
      db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM holds WHERE status = 'open' AND chain_id = $1", [config.chainId]),
    ]);
    const spare = depositWei - outstandingWei;
    const healthy = spare >= config.minDepositWei;
    chain.deposit = {
      healthy,
      depositWei,
      outstandingWei,
      checkedAt: new Date(),
      unreadable: false,
      reason: healthy ? undefined : `the paymaster's deposit (${depositWei} wei) minus open holds (${outstandingWei} wei) is below the threshold of ${config.minDepositWei} wei`,
    };
    options.metrics?.depositWei.set(label, Number(depositWei));
    options.metrics?.outstandingWei.set(label, Number(outstandingWei));
    options.metrics?.openHolds.set(label, Number(open.rows[0]!.n));
  } catch (error) {
    const last = chain.deposit.checkedAt?.getTime() ?? 0;
    chain.deposit = { ...chain.deposit, failing: true };
    if (Date.now() - last > (options.staleAfterMs ?? 45_000)) {
      chain.deposit = { ...chain.deposit, healthy: false, unreadable: true, reason: `the paymaster's deposit could not be read (${(error as Error).message.split("\n")[0]})` };
    }
    options.metrics?.depositHealthy.set(label, chain.deposit.healthy ? 1 : 0);
    if (before && !chain.deposit.healthy) options.log?.error({ chainId: config.chainId, alert: true, reason: chain.deposit.reason }, "ALERT: sponsorship paused, deposit unreadable");
    return;
  }
  options.metrics?.depositHealthy.set(label, chain.deposit.healthy ? 1 : 0);
  if (before && !chain.deposit.healthy) options.log?.error({ chainId: config.chainId, alert: true, reason: chain.deposit.reason }, "ALERT: sponsorship paused, deposit low");
  if (!before && chain.deposit.healthy) options.log?.info({ chainId: config.chainId }, "deposit healthy: sponsorship resumed");
}

/** While a chain's deposit read fails, the monitor retries this often instead of waiting a whole interval. */
const FAILING_RECHECK_MS = 1_000;

export type DepositMonitor = Worker & {
  /** Checks `chain` now (callers asking at once share one check); resolves when done, never rejects. */
  recheck(chain: ChainRuntime): Promise<void>;
};

/**
 * Every `intervalMs`, each chain's deposit; while a read fails (the RPC is down), every second, so sponsorship
 * resumes as soon as the RPC answers again rather than an interval later.
 */
export function startDepositMonitor(options: { db: Database; chains: readonly ChainRuntime[]; log: Logger; metrics?: Metrics; intervalMs: number }): DepositMonitor {
  const inflight = new Map<ChainRuntime, Promise<void>>();
  const recheck = (chain: ChainRuntime) => {
    let check = inflight.get(chain);
    if (!check) {
      check = checkDeposit(options.db, chain, { ...options, staleAfterMs: options.intervalMs * 3 })
        .catch(() => {})
        .finally(() => inflight.delete(chain));
      inflight.set(chain, check);
    }
    return check;
  };
  const worker = every(
    () => (options.chains.some((c) => c.deposit.failing || c.deposit.unreadable) ? Math.min(FAILING_RECHECK_MS, options.intervalMs) : options.intervalMs),
    async () => {
      await Promise.all(options.chains.map(recheck));
    },
  );
  return { ...worker, recheck };
}
