/**
 * The chain workers, run by every instance: settlement (with expired-hold release) under a Postgres advisory
 * lock per chain, so exactly one instance settles a chain at a time; and the deposit monitor, which only reads
 * and so runs everywhere (each instance must know whether to refuse sponsorship).
 */
import { parseAbi } from "viem";
import type { Database } from "../db/database";
import type { Logger } from "../http/logging";
import type { Metrics } from "../http/metrics";
import { outstandingHoldsWei, releaseExpiredHolds } from "../sponsor/holds";
import type { ChainRuntime } from "./chainRuntime";
import { settleChain } from "./settlement";

/** Advisory lock keys: "fpsettle" ‖ chain id, and one for hold expiry. */
const SETTLE_LOCK_BASE = 0x6670736574000000n;
const EXPIRY_LOCK = 0x6670657870697279n;

export type Worker = { stop: () => Promise<void>; tick: () => Promise<void> };

/** Runs `tick` every `intervalMs` (never two at once); `stop` waits for the running tick. */
export function every(intervalMs: number, tick: () => Promise<void>): Worker {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const run = () => {
    running = tick().finally(() => {
      if (!stopped) timer = setTimeout(run, intervalMs);
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
        await db.withAdvisoryLock(SETTLE_LOCK_BASE + BigInt(chain.config.chainId), () => settleChain(db, chain, { log, metrics }));
      } catch (error) {
        log.warn({ chainId: chain.config.chainId, err: error }, "settlement pass failed; retrying next tick");
      }
    }
    try {
      const outcome = await db.withAdvisoryLock(EXPIRY_LOCK, () => releaseExpiredHolds(db, { graceSeconds: options.holdGraceSeconds }));
      if (outcome.acquired && outcome.result > 0) log.info({ released: outcome.result }, "expired holds released");
    } catch (error) {
      log.warn({ err: error }, "releasing expired holds failed; retrying next tick");
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
      reason: healthy ? undefined : `the paymaster's deposit (${depositWei} wei) minus open holds (${outstandingWei} wei) is below the threshold of ${config.minDepositWei} wei`,
    };
    options.metrics?.depositWei.set(label, Number(depositWei));
    options.metrics?.outstandingWei.set(label, Number(outstandingWei));
    options.metrics?.openHolds.set(label, Number(open.rows[0]!.n));
  } catch (error) {
    const last = chain.deposit.checkedAt?.getTime() ?? 0;
    if (Date.now() - last > (options.staleAfterMs ?? 45_000)) {
      chain.deposit = { ...chain.deposit, healthy: false, reason: `the paymaster's deposit could not be read (${(error as Error).message.split("\n")[0]})` };
    }
  }
  options.metrics?.depositHealthy.set(label, chain.deposit.healthy ? 1 : 0);
  if (before && !chain.deposit.healthy) options.log?.error({ chainId: config.chainId, alert: true, reason: chain.deposit.reason }, "ALERT: sponsorship paused, deposit low");
  if (!before && chain.deposit.healthy) options.log?.info({ chainId: config.chainId }, "deposit healthy: sponsorship resumed");
}

export function startDepositMonitor(options: { db: Database; chains: readonly ChainRuntime[]; log: Logger; metrics?: Metrics; intervalMs: number }): Worker {
  return every(options.intervalMs, async () => {
    for (const chain of options.chains) await checkDeposit(options.db, chain, { ...options, staleAfterMs: options.intervalMs * 3 });
  });
}
