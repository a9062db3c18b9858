/**
 * What is reconciled each day: each enabled gateway's bill, and (once the chain tie-out is wired) each chain and
 * EntryPoint. Built once by the composition root and shared by the schedule, the admin routes and the CLI.
 */
import type { Database } from "../platform/db/database";
import { reconcileBillDay } from "../payments/bills";
import type { PaymentGateway, Provider } from "../payments/gateway";
import type { ReconciliationScope } from "./daily";

export type ScopesDeps = { db: Database; gateways: ReadonlyMap<Provider, PaymentGateway> };

export function reconciliationScopes(deps: ScopesDeps): ReconciliationScope[] {
  return [...deps.gateways.values()].map((gateway) => ({ scope: gateway.provider, reconcile: (day: string) => reconcileBillDay({ db: deps.db, gateway }, day) }));
}
