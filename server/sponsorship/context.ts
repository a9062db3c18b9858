/**
 * The ERC-7677 `context` (the fourth parameter of pm_getPaymasterStubData / pm_getPaymasterData, or the REST
 * body's `context`): what a DApp tells this paymaster beyond the operation itself. Fields:
 *
 *   sponsorshipPolicyId | policyId   which of the key's named policies judges the operation (Pimlico's and
 *                                    Alchemy's names for it); absent: the key's default policy
 *   senderProof                      proof that the caller controls the sender (senderProof.ts)
 *
 * Fails closed: any other field is refused, so a DApp that passes a provider-specific field this server does not
 * read (a misspelt policy id, an ERC-20 `token`) learns so instead of being sponsored by another policy.
 */
import type { ApiKey } from "./apiKeys";
import { SponsorError, invalidParams } from "./errors";
import type { PolicyRules } from "./policy";

const CONTEXT_FIELDS = ["sponsorshipPolicyId", "policyId", "senderProof"] as const;

/** The policy a request is judged by: a named one (`id`), or the key's default (`id` null). */
export type SelectedPolicy = { id: string | null; rules: PolicyRules };

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value) : typeof value;
}

/** Reads the policy id a context names, refusing a context this server cannot honour. */
export function contextPolicyId(context: unknown): string | undefined {
  if (context === undefined || context === null) return undefined;
  if (typeof context !== "object" || Array.isArray(context)) throw invalidParams(`context must be an object such as { "sponsorshipPolicyId": "…" }: got ${describe(context)}`, { field: "context" });
  const fields = context as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((key) => !(CONTEXT_FIELDS as readonly string[]).includes(key));
  if (unknown.length) {
    const named = unknown.slice(0, 5).map((key) => JSON.stringify(key.slice(0, 64)));
    throw invalidParams(`context.${unknown.length > 1 ? "fields" : "field"} ${named.join(", ")} ${unknown.length > 1 ? "are" : "is"} not read by this paymaster; it reads ${CONTEXT_FIELDS.join(", ")}`, {
      field: "context",
      unknownFields: unknown.slice(0, 5),
    });
  }
  const ids = (["sponsorshipPolicyId", "policyId"] as const).filter((key) => fields[key] !== undefined && fields[key] !== null);
  for (const key of ids) {
    if (typeof fields[key] !== "string" || fields[key] === "") throw invalidParams(`context.${key} must be a policy id (a non-empty string): got ${describe(fields[key])}`, { field: `context.${key}` });
  }
  if (ids.length === 2 && fields.sponsorshipPolicyId !== fields.policyId) {
    throw invalidParams("context.sponsorshipPolicyId and context.policyId name different policies; pass one of them", { field: "context" });
  }
  return ids.length ? (fields[ids[0]!] as string) : undefined;
}

/** The policy that judges this request: the named one the context selects, else the key's default. */
export function selectPolicy(apiKey: ApiKey, context: unknown): SelectedPolicy {
  const id = contextPolicyId(context);
  if (id === undefined) return { id: null, rules: apiKey.policy };
  const rules = Object.hasOwn(apiKey.policy.policies ?? {}, id) ? apiKey.policy.policies![id] : undefined;
  if (!rules) {
    throw new SponsorError("unknown_policy", `this API key has no sponsorship policy ${describe(id)}; pass one of the key's policy ids, or no id for its default policy`, { policyId: id.slice(0, 64) });
  }
  return { id, rules };
}
