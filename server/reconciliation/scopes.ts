/**
 * What is reconciled each day: each enabled gateway's bill, and each chain and EntryPoint we serve. Built once by
 * the composition root and shared by the schedule, the admin routes and the CLI.
 */
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";
import { reconcileBillDay } from "../payments/bills";
import type { PaymentGateway, Provider } from "../payments/gateway";
import { chainScope, tieOutChainDay } from "./chainTieOut";
import { untilAborted } from "./abortable";
import type { ReconciliationScope } from "./daily";

export type ScopesDeps = { db: Database; gateways: ReadonlyMap<Provider, PaymentGateway>; chains: Iterable<ChainRuntime> };

export function reconciliationScopes(deps: ScopesDeps): ReconciliationScope[] {
  const gateways = [...deps.gateways.values()].map((gateway) => ({ scope: gateway.provider, reconcile: (day: string, signal?: AbortSignal) => reconcileBillDay({ db: deps.db, gateway }, day, signal) }));
  const chains = [...deps.chains].flatMap((chain) =>
    chain.entryPoints.map((entryPoint) => ({
      scope: chainScope(chain.config.chainId, entryPoint.address),
      // the tie-out only reads: abandoning it on abort leaves nothing half-done
      reconcile: (day: string, signal?: AbortSignal) => untilAborted(tieOutChainDay({ db: deps.db, chain, entryPoint }, day), signal),
    })),
  );
  return [...gateways, ...chains];
}
