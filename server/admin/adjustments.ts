/**
 * Manual adjustments: an operator's correction of an account's available quota, up or down, with a reason. The
 * ledger entry (kind `adjust`, memo = the reason) and the audit row commit together or not at all.
 */
import { randomUUID } from "node:crypto";
import type { Database, Queryable } from "../platform/db/database";
import { AppError } from "../platform/errors";
import { adjust, lockBalance } from "../ledger/ledger";
import type { z } from "zod";
import type { adjustmentSchema } from "../schemas/admin";
import { recordAdminAction } from "./queries";

export type AdjustmentInput = {
  account: string;
  /** Signed, non-zero: positive credits, negative debits the available balance. */
  amountFen: bigint;
  reason: string;
  /** Repeating the request with the same key applies the adjustment once (a double click, a retried request). */
  idempotencyKey?: string;
};

/** Who asked: the admin token is shared and says nothing about that, so the request is what is recorded. */
export type Requester = { requestId?: string; ip?: string };

/** What `POST /admin/adjustments` answers (`applied` is false when an earlier request with the same idempotencyKey already applied it). */
export type Adjustment = z.input<typeof adjustmentSchema>;

const adjustmentIdOf = (input: AdjustmentInput): string => (input.idempotencyKey ? `adj:${input.idempotencyKey}` : `adj_${randomUUID()}`);

async function existingAdjustment(tx: Queryable, adjustmentId: string) {
  const { rows } = await tx.query<{ account: string; available_delta_fen: bigint; memo: string | null; created_at: Date; audit_id: bigint | null }>(
    `SELECT e.account, e.available_delta_fen, e.memo, e.created_at,
            (SELECT a.id FROM admin_actions a WHERE a.action = 'adjustment' AND a.detail->>'adjustmentId' = e.reference ORDER BY a.id LIMIT 1) AS audit_id
       FROM ledger_entries e WHERE e.kind = 'adjust' AND e.reference = $1`,
    [adjustmentId],
  );
  return rows[0];
}

/**
 * Applies the adjustment in one transaction: lock the account, refuse a debit beyond its available balance (409
 * naming both), append the ledger entry and the audit row.
 */
export async function applyAdjustment(db: Database, input: AdjustmentInput, by: Requester): Promise<Adjustment> {
  const account = input.account.toLowerCase();
  const reason = input.reason.trim();
  const adjustmentId = adjustmentIdOf(input);
  return db.transaction(async (tx) => {
    // the row lock first: a concurrent request with the same key waits here, then sees the first one's entry
    const before = await lockBalance(tx, account);
    const earlier = input.idempotencyKey ? await existingAdjustment(tx, adjustmentId) : undefined;
    if (earlier) {
      if (earlier.account !== account || earlier.available_delta_fen !== input.amountFen || earlier.memo !== reason) {
        throw new AppError(409, "conflict", `idempotencyKey ${input.idempotencyKey} was already used for another adjustment (${earlier.available_delta_fen} fen to ${earlier.account})`, {
          adjustmentId,
        });
      }
      return {
        adjustmentId,
        account,
        amountFen: input.amountFen.toString(),
        reason,
        availableFen: before.availableFen.toString(),
        heldFen: before.heldFen.toString(),
        applied: false,
        auditId: earlier.audit_id?.toString() ?? null,
        createdAt: earlier.created_at.toISOString(),
      };
    }
    if (input.amountFen < 0n && -input.amountFen > before.availableFen) {
      throw new AppError(
        409,
        "insufficient_balance",
        `cannot debit ${-input.amountFen} fen from ${account}: its available balance is ${before.availableFen} fen (held fen cannot be adjusted)`,
        { availableFen: before.availableFen.toString(), requestedFen: (-input.amountFen).toString() },
      );
    }
    const { balance } = await adjust(tx, { account, adjustmentId, amountFen: input.amountFen, reason });
    const audit = await recordAdminAction(tx, {
      action: "adjustment",
      detail: {
        adjustmentId,
        account,
        amountFen: input.amountFen.toString(),
        reason,
        availableFenBefore: before.availableFen.toString(),
        availableFenAfter: balance.availableFen.toString(),
        ...(input.idempotencyKey ? { idempotencyKey: input.idempotencyKey } : {}),
      },
      requestId: by.requestId,
      ip: by.ip,
    });
    return {
      adjustmentId,
      account,
      amountFen: input.amountFen.toString(),
      reason,
      availableFen: balance.availableFen.toString(),
      heldFen: balance.heldFen.toString(),
      applied: true,
      auditId: audit.id,
      createdAt: audit.createdAt,
    };
  });
}
