/** `GET /v1/accounts/{address}`: an account's quota as anyone may read it. */
import { accountSchema, dateTimeOut, decimalOut, fenOut, lowerAddressOut, orderIdSchema, signedFenOut } from "./primitives";
import { z } from "./zod";

export const ledgerKindSchema = z.enum(["topup", "hold", "release", "charge", "refund", "adjust"]);

export const accountParams = z.object({ address: accountSchema.openapi({ param: { description: "the account: lower-case, or with a correct EIP-55 checksum" } }) });

export const holdSchema = z
  .object({
    id: z.string(),
    chainId: z.number().int(),
    nonce: decimalOut.describe("the UserOperation nonce (uint256) as a decimal string"),
    amountFen: fenOut,
    validUntil: dateTimeOut.describe("released once settlement has read a chain block past this (plus HOLD_GRACE_SECONDS) if the operation never landed"),
    createdAt: dateTimeOut,
  })
  .openapi("Hold");

export const accountEntrySchema = z
  .strictObject({
    kind: ledgerKindSchema,
    availableDeltaFen: signedFenOut,
    heldDeltaFen: signedFenOut,
    orderId: orderIdSchema.optional().describe("the top-up order (topup entries only)"),
    createdAt: dateTimeOut,
  })
  .openapi("AccountEntry", {
    description: "A ledger entry as anyone may see it: amounts, kind, time, and a top-up's order id — never an operator's memo or an internal reference.",
  });

export const accountSchemaOut = z
  .object({
    account: lowerAddressOut,
    availableFen: fenOut.describe("what sponsorships can hold (0 for an account never seen)"),
    heldFen: fenOut.describe("held by operations awaiting settlement"),
    openHolds: z.array(holdSchema).describe("open holds, newest first (at most 20)"),
    entries: z.array(accountEntrySchema).describe("the latest ledger entries, newest first (at most 20)"),
  })
  .openapi("Account");
export type AccountView = z.input<typeof accountSchemaOut>;
