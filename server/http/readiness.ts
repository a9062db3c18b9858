/**
 * Readiness (`GET /readyz`): can this instance serve — does its database answer, does each chain's RPC answer,
 * is it not shutting down. It is public (load balancers probe it without credentials), so it must not become
 * a lever on our dependencies: the result is cached for `cacheMs` and shared by every caller meanwhile, a probe
 * still running is never started again, and each probe is given up after `timeoutMs`, so the answer comes within
 * about that long whatever hangs and a flood of probes costs one RPC call per chain per `cacheMs`.
 */
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";

export type ChainReadiness = { chainId: number; rpc: "ok" | "unreachable"; block?: string; depositHealthy: boolean };

export type ReadinessReport =
  | { ready: true; database: "ok"; chains: ChainReadiness[] }
  | { ready: false; reason: string; database: "ok" | "unreachable"; chains: ChainReadiness[] };

export type Readiness = {
  check(): Promise<ReadinessReport>;
  /** From now on readiness fails: the load balancer stops sending new requests while in-flight ones drain. */
  shutDown(): void;
  readonly shuttingDown: boolean;
};

/** A probe's outcome, or "timeout" after `ms`; the probe itself keeps running and is remembered as in flight. */
function bounded<T>(probe: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([probe, new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)))]).finally(() => clearTimeout(timer));
}

/** Runs `probe` unless one is still in flight, in which case the caller learns it has not answered yet. */
function single<T>(probe: () => Promise<T>): () => Promise<T | "busy"> {
  let inflight: Promise<T> | undefined;
  return () => {
    if (inflight) return Promise.resolve("busy" as const);
    const running = probe().finally(() => {
      inflight = undefined;
    });
    inflight = running;
    return running;
  };
}

export function createReadiness(options: { db: Database; chains: readonly ChainRuntime[]; deposits: { chainHealthy(chain: ChainRuntime): boolean }; timeoutMs?: number; cacheMs?: number }): Readiness {
  const timeoutMs = options.timeoutMs ?? 800;
  const cacheMs = options.cacheMs ?? 1_000;
  let shuttingDown = false;
  let cached: { at: number; report: Promise<ReadinessReport> } | undefined;

  const database = single(() => options.db.query("SELECT 1").then(() => "ok" as const));
  const rpcs = new Map(options.chains.map((chain) => [chain, single(() => chain.requestClient.getBlockNumber({ cacheTime: 0 }))]));

  const probe = async (): Promise<ReadinessReport> => {
    const [db, ...chains] = await Promise.all([
      bounded(database(), timeoutMs).catch(() => "error" as const),
      ...options.chains.map(async (chain): Promise<ChainReadiness> => {
        const block = await bounded(rpcs.get(chain)!(), timeoutMs).catch(() => "error" as const);
        const answered = typeof block === "bigint";
        return { chainId: chain.config.chainId, rpc: answered ? "ok" : "unreachable", ...(answered ? { block: block.toString() } : {}), depositHealthy: options.deposits.chainHealthy(chain) };
      }),
    ]);
    const databaseOk = db === "ok";
    const down = chains.filter((c) => c.rpc !== "ok").map((c) => c.chainId);
    if (!databaseOk) return { ready: false, reason: "the database does not answer", database: "unreachable", chains };
    if (down.length > 0) return { ready: false, reason: `the RPC of chain ${down.join(", ")} does not answer`, database: "ok", chains };
    return { ready: true, database: "ok", chains };
  };

  return {
    get shuttingDown() {
      return shuttingDown;
    },
    shutDown() {
      shuttingDown = true;
    },
    check() {
      if (shuttingDown) return Promise.resolve({ ready: false, reason: "the server is shutting down", database: "ok", chains: [] });
      if (!cached || Date.now() - cached.at >= cacheMs) cached = { at: Date.now(), report: probe() };
      return cached.report;
    },
  };
}
