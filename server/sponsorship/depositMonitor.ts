/**
 * The deposit monitor, run by every instance (it only reads, and each instance must know whether to refuse
 * sponsorship): for each chain and each EntryPoint it serves, the paymaster's deposit against the worst case of the
 * open holds on that EntryPoint. Sponsorship stops on a (chain, EntryPoint) while deposit − outstanding <
 * minDepositWei, or while the deposit cannot be read for three intervals: a paymaster must never sign what its
 * deposit cannot pay. It is the one writer of deposit health; sponsorship, readiness and the admin API read it
 * through `health(chainId, entryPoint)`.
 */
import { entryPoint07Abi } from "viem/account-abstraction";
import type { ChainRuntime, EntryPointRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";
import { type Worker, every } from "../platform/every";
import type { Logger } from "../platform/logger";
import type { Metrics } from "../platform/metrics";
import { countOpenHolds, outstandingHoldsWei } from "./holds";

export type DepositHealth = {
  healthy: boolean;
  depositWei?: bigint;
  outstandingWei?: bigint;
  checkedAt?: Date;
  /** The last read failed (the RPC did not answer); the monitor retries every second meanwhile. */
  failing?: boolean;
  /** Unhealthy because the deposit could not be read for a while (an outage), not because it is low. */
  unreadable?: boolean;
  /** Why sponsorship is refused, when it is. */
  reason?: string;
};

/** Before the first check (the app runs one before it serves). */
export const UNCHECKED_DEPOSIT: DepositHealth = Object.freeze({ healthy: false, reason: "the paymaster's deposit has not been checked yet" });

/** While a chain's deposit read fails, the monitor retries this often instead of waiting a whole interval. */
const FAILING_RECHECK_MS = 1_000;

export type DepositMonitorOptions = {
  db: Database;
  chains: readonly ChainRuntime[];
  log?: Logger;
  metrics?: Metrics;
  /** How often each chain is read while its reads succeed. */
  intervalMs: number;
  /** A deposit unread for this long is unreadable (sponsorship pauses); three intervals by default. */
  staleAfterMs?: number;
};

const key = (chainId: number, entryPoint: string) => `${chainId}:${entryPoint.toLowerCase()}`;

export class DepositMonitor {
  private readonly health_ = new Map<string, DepositHealth>();
  private readonly inflight = new Map<number, Promise<void>>();
  private worker?: Worker;

  constructor(private readonly options: DepositMonitorOptions) {}

  /** The deposit health of the paymaster of `entryPoint` on `chainId`, as last read. */
  health(chainId: number, entryPoint: string): DepositHealth {
    return this.health_.get(key(chainId, entryPoint)) ?? UNCHECKED_DEPOSIT;
  }

  /** Whether every EntryPoint's paymaster on the chain is healthy (readiness). */
  chainHealthy(chain: ChainRuntime): boolean {
    return chain.entryPoints.every((ep) => this.health(chain.config.chainId, ep.address).healthy);
  }

  /** Reads `chain`'s deposits now (callers asking at once share one read); resolves when done, never rejects. */
  check(chain: ChainRuntime): Promise<void> {
    const id = chain.config.chainId;
    let check = this.inflight.get(id);
    if (!check) {
      check = Promise.all(chain.entryPoints.map((ep) => this.read(chain, ep).catch(() => {})))
        .then(() => {})
        .finally(() => this.inflight.delete(id));
      this.inflight.set(id, check);
    }
    return check;
  }

  private troubled(chain: ChainRuntime): boolean {
    return chain.entryPoints.some((ep) => {
      const health = this.health(chain.config.chainId, ep.address);
      return health.failing || health.unreadable;
    });
  }

  /**
   * Every `intervalMs`, each chain's deposit; while a read fails (the RPC is down), every second, so sponsorship
   * resumes as soon as the RPC answers again rather than an interval later.
   */
  start(): void {
    const { chains, intervalMs } = this.options;
    this.worker ??= every(
      () => (chains.some((c) => this.troubled(c)) ? Math.min(FAILING_RECHECK_MS, intervalMs) : intervalMs),
      async () => {
        await Promise.all(chains.map((chain) => this.check(chain)));
      },
    );
  }

  async stop(): Promise<void> {
    await this.worker?.stop();
  }

  private async read(chain: ChainRuntime, entryPoint: EntryPointRuntime): Promise<void> {
    const { db, log, metrics } = this.options;
    const { config } = chain;
    const label = { chain: String(config.chainId), entry_point: entryPoint.version };
    const previous = this.health(config.chainId, entryPoint.address);
    let next: DepositHealth;
    try {
      const [depositWei, outstandingWei, open] = await Promise.all([
        // balanceOf is the StakeManager's, the same in every EntryPoint version
        chain.client.readContract({ address: entryPoint.address, abi: entryPoint07Abi, functionName: "balanceOf", args: [entryPoint.paymaster] }),
        outstandingHoldsWei(db, config.chainId, entryPoint.address),
        countOpenHolds(db, config.chainId, entryPoint.address),
      ]);
      const healthy = depositWei - outstandingWei >= config.minDepositWei;
      next = {
        healthy,
        depositWei,
        outstandingWei,
        checkedAt: new Date(),
        unreadable: false,
        reason: healthy ? undefined : `the paymaster's deposit (${depositWei} wei) minus open holds (${outstandingWei} wei) is below the threshold of ${config.minDepositWei} wei`,
      };
      metrics?.depositWei.set(label, Number(depositWei));
      metrics?.outstandingWei.set(label, Number(outstandingWei));
      metrics?.openHolds.set(label, open);
    } catch (error) {
      const last = previous.checkedAt?.getTime() ?? 0;
      next = { ...previous, failing: true };
      if (Date.now() - last > (this.options.staleAfterMs ?? this.options.intervalMs * 3)) {
        next = { ...next, healthy: false, unreadable: true, reason: `the paymaster's deposit could not be read (${(error as Error).message.split("\n")[0]})` };
      }
    }
    this.health_.set(key(config.chainId, entryPoint.address), next);
    metrics?.depositHealthy.set(label, next.healthy ? 1 : 0);
    const where = { chainId: config.chainId, entryPoint: entryPoint.address, entryPointVersion: entryPoint.version };
    if (previous.healthy && !next.healthy) log?.error({ ...where, alert: true, reason: next.reason }, `ALERT: sponsorship paused, deposit ${next.unreadable ? "unreadable" : "low"}`);
    if (!previous.healthy && next.healthy) log?.info(where, "deposit healthy: sponsorship resumed");
  }
}
