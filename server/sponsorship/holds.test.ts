import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { it } from "node:test";
import type { Hex } from "viem";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger, creditTopUp, getBalance } from "../ledger/ledger";
import { SponsorError } from "./errors";
import { type HoldRequest, HoldWindowConflict, createHoldReserver, listHolds, releaseExpiredHolds, releaseOrphanedHolds, reserveHolds } from "./holds";

import { ENTRY_POINT_V07 } from "../chain/addresses";

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;
const opHash = () => `0x${randomBytes(32).toString("hex")}` as Hex;
/** What the sponsor signs: a replacement carries the validUntil of the hold it replaces (see the window tests). */
const VALID_UNTIL = new Date(Math.floor(Date.now() / 1000) * 1000 + 600_000);

function request(account: string, nonce: bigint, amountFen: bigint, extra: Partial<HoldRequest> = {}): HoldRequest {
  return {
    chainId: 31337,
    entryPoint: ENTRY_POINT_V07.toLowerCase(),
    account,
    nonce,
    amountFen,
    maxCostWei: amountFen * 10n ** 12n,
    validUntil: VALID_UNTIL,
    apiKeyId: null,
    userOpHash: opHash(),
    quote: { fenPerNative: 2_000_000n, markupBps: 500 },
    maxHolds: 8,
    ...extra,
  };
}

describeWithDatabases("holds", (db) => {
  const fund = (account: string, fen: bigint) => db().transaction((tx) => creditTopUp(tx, { account, orderId: `o-${account}-${fen}`, amountFen: fen }));

  it("a hold moves the worst case from available to held and records the signed operation", async () => {
    const account = newAccount();
    await fund(account, 1_000n);
    const req = request(account, 0n, 300n);
    const [result] = await db().transaction((tx) => reserveHolds(tx, [req]));
    assert.ok(result !== undefined && !(result instanceof Error));
    assert.equal(result.heldFen, 300n);
    assert.equal(result.availableFen, 700n);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 700n, heldFen: 300n });
    const { rows } = await db().query<{ hold_id: string }>("SELECT hold_id FROM sponsored_operations WHERE user_op_hash = $1", [req.userOpHash]);
    assert.equal(rows[0]?.hold_id, result.holdId);
  });

  it("a repeated request for the same nonce replaces the hold, keeps the larger amount, and never reserves twice", async () => {
    const account = newAccount();
    await fund(account, 1_000n);
    const reserver = createHoldReserver(db());
    const first = await reserver.reserve(request(account, 7n, 300n));
    const smaller = await reserver.reserve(request(account, 7n, 200n));
    assert.equal(smaller.holdId, first.holdId);
    assert.equal(smaller.heldFen, 300n);
    assert.equal(smaller.replaced, true);
    const larger = await reserver.reserve(request(account, 7n, 450n));
    assert.equal(larger.holdId, first.holdId);
    assert.equal(larger.heldFen, 450n);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 550n, heldFen: 450n });
    const open = await listHolds(db(), account, { status: "open" });
    assert.equal(open.length, 1);
    const { rows } = await db().query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM sponsored_operations WHERE hold_id = $1", [first.holdId]);
    assert.equal(rows[0]!.n, 3n, "every signed variant is recorded: any of them may land");
  });

  it("the same nonce on another chain is another hold", async () => {
    const account = newAccount();
    await fund(account, 1_000n);
    const reserver = createHoldReserver(db());
    const a = await reserver.reserve(request(account, 1n, 100n));
    const b = await reserver.reserve(request(account, 1n, 100n, { chainId: 8453 }));
    assert.notEqual(a.holdId, b.holdId);
    assert.equal((await getBalance(db(), account)).heldFen, 200n);
  });

  it("an account without enough quota is refused with the available and required amounts, and nothing is held", async () => {
    const account = newAccount();
    await fund(account, 100n);
    const reserver = createHoldReserver(db());
    await assert.rejects(reserver.reserve(request(account, 0n, 101n)), (e: unknown) => {
      assert.ok(e instanceof SponsorError);
      assert.equal(e.reason, "insufficient_quota");
      assert.deepEqual(e.data, { availableFen: "100", requiredFen: "101" });
      return true;
    });
    const unknown = newAccount();
    await assert.rejects(reserver.reserve(request(unknown, 0n, 1n)), (e: unknown) => e instanceof SponsorError && e.reason === "insufficient_quota");
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 100n, heldFen: 0n });
    assert.equal((await listHolds(db(), account)).length, 0);
  });

  it("a sender may have at most maxHolds open holds", async () => {
    const account = newAccount();
    await fund(account, 10_000n);
    const reserver = createHoldReserver(db());
    for (let nonce = 0n; nonce < 3n; nonce++) await reserver.reserve(request(account, nonce, 10n, { maxHolds: 3 }));
    await assert.rejects(reserver.reserve(request(account, 3n, 10n, { maxHolds: 3 })), (e: unknown) => e instanceof SponsorError && e.reason === "too_many_holds");
    // replacing one of the three is still allowed
    await reserver.reserve(request(account, 2n, 20n, { maxHolds: 3 }));
    assert.equal((await getBalance(db(), account)).heldFen, 40n);
  });

  it("64 simultaneous requests against a balance that covers exactly k holds: exactly k succeed, the balance never goes negative", async () => {
    const account = newAccount();
    const k = 23;
    await fund(account, BigInt(k) * 100n);
    const reserver = createHoldReserver(db());
    const outcomes = await Promise.allSettled(Array.from({ length: 64 }, (_, i) => reserver.reserve(request(account, BigInt(i), 100n, { maxHolds: 1_000 }))));
    const ok = outcomes.filter((o) => o.status === "fulfilled").length;
    const refused = outcomes.filter((o) => o.status === "rejected" && o.reason instanceof SponsorError && o.reason.reason === "insufficient_quota").length;
    assert.equal(ok, k);
    assert.equal(refused, 64 - k);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 0n, heldFen: BigInt(k) * 100n });
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("a batch mixing accounts decides each against its own balance", async () => {
    const rich = newAccount();
    const poor = newAccount();
    await fund(rich, 1_000n);
    await fund(poor, 50n);
    const results = await db().transaction((tx) =>
      reserveHolds(tx, [request(rich, 0n, 400n), request(poor, 0n, 60n), request(rich, 1n, 400n), request(rich, 2n, 400n), request(poor, 1n, 50n)]),
    );
    assert.deepEqual(
      results.map((r) => (r instanceof SponsorError ? r.reason : "held")),
      ["held", "insufficient_quota", "held", "insufficient_quota", "held"],
    );
    assert.deepEqual(await getBalance(db(), rich), { account: rich, availableFen: 200n, heldFen: 800n });
    assert.deepEqual(await getBalance(db(), poor), { account: poor, availableFen: 0n, heldFen: 50n });
  });

  it("an expired hold is released after the grace period, once", async () => {
    const account = newAccount();
    await fund(account, 1_000n);
    const reserver = createHoldReserver(db());
    const expired = await reserver.reserve(request(account, 0n, 300n, { validUntil: new Date(Date.now() - 60_000) }));
    await reserver.reserve(request(account, 1n, 200n));
    assert.equal(await releaseExpiredHolds(db(), { chainId: 31337, chainTime: new Date(), graceSeconds: 120 }), 0, "still inside the grace period");
    assert.equal(await releaseExpiredHolds(db(), { chainId: 31337, chainTime: new Date(), graceSeconds: 30 }), 1);
    assert.equal(await releaseExpiredHolds(db(), { chainId: 31337, chainTime: new Date(), graceSeconds: 30 }), 0);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 800n, heldFen: 200n });
    const all = await listHolds(db(), account);
    assert.equal(all.find((h) => h.id === expired.holdId)?.status, "released");
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("a replacement signed with a later validUntil than its hold is refused with the hold's window (re-asking never stretches a hold)", async () => {
    const account = newAccount();
    await fund(account, 1_000n);
    const reserver = createHoldReserver(db());
    const first = await reserver.reserve(request(account, 0n, 100n));
    const later = new Date(VALID_UNTIL.getTime() + 60_000);
    await assert.rejects(reserver.reserve(request(account, 0n, 100n, { validUntil: later })), (error: unknown) => error instanceof HoldWindowConflict && error.validUntil.getTime() === VALID_UNTIL.getTime());
    // signed with the hold's window, it replaces as usual; an earlier window is covered already
    assert.equal((await reserver.reserve(request(account, 0n, 150n))).holdId, first.holdId);
    assert.equal((await reserver.reserve(request(account, 0n, 100n, { validUntil: new Date(VALID_UNTIL.getTime() - 60_000) }))).holdId, first.holdId);
    const [hold] = await listHolds(db(), account);
    assert.equal(hold?.validUntil.getTime(), VALID_UNTIL.getTime());
    assert.equal(hold?.amountFen, 150n);
  });

  it("a hold is never stretched: a replacement signed with any later window is refused, however little of the hold's is left", async () => {
    const account = newAccount();
    await fund(account, 1_000n);
    const reserver = createHoldReserver(db());
    const ending = new Date(Date.now() + 5_000);
    const first = await reserver.reserve(request(account, 0n, 100n, { validUntil: ending }));
    await assert.rejects(reserver.reserve(request(account, 0n, 100n, { validUntil: new Date(Date.now() + 600_000) })), (e: unknown) => e instanceof HoldWindowConflict && e.validUntil.getTime() === ending.getTime());
    const [hold] = await listHolds(db(), account);
    assert.equal(hold?.id, first.holdId);
    assert.equal(hold?.validUntil.getTime(), ending.getTime());
  });

  it("one API key and one client IP may take only their share of a sender's holds; replacements do not count", async () => {
    const account = newAccount();
    await fund(account, 10_000n);
    await db().query("INSERT INTO api_keys (id, name, key_hash) VALUES ('k-a', 'a', $1), ('k-b', 'b', $2) ON CONFLICT DO NOTHING", [opHash(), opHash()]);
    const reserver = createHoldReserver(db());
    const caps = { maxHolds: 8, maxHoldsPerApiKey: 3, maxHoldsPerIp: 2 };
    const byKey = (n: bigint, apiKeyId: string, clientIp: string) => reserver.reserve(request(account, n << 64n, 10n, { ...caps, apiKeyId, clientIp }));
    await byKey(0n, "k-b", "198.51.100.1");
    await byKey(1n, "k-b", "198.51.100.1");
    await assert.rejects(byKey(2n, "k-b", "198.51.100.1"), (e: unknown) => e instanceof SponsorError && e.reason === "too_many_holds" && e.data.scope === "ip");
    await byKey(2n, "k-b", "198.51.100.2");
    await assert.rejects(byKey(3n, "k-b", "198.51.100.3"), (e: unknown) => e instanceof SponsorError && e.reason === "too_many_holds" && e.data.scope === "apiKey");
    // a replacement of an existing nonce is not a new hold
    await byKey(1n, "k-b", "198.51.100.9");
    // another key from another client still gets its own
    await byKey(3n, "k-a", "203.0.113.5");
    assert.equal((await listHolds(db(), account, { status: "open" })).length, 4);
  });
});

describeWithDatabases("holds of chains no longer configured", (db) => {
  it("are released a week past their validUntil, and not before; holds of configured chains are left to settlement", async () => {
    const account = newAccount();
    await db().transaction((tx) => creditTopUp(tx, { account, orderId: `o-orphan-${account}`, amountFen: 1_000n }));
    const reserver = createHoldReserver(db());
    const day = 86_400_000;
    const old = await reserver.reserve(request(account, 1n << 64n, 100n, { chainId: 999, validUntil: new Date(Date.now() - 8 * day) }));
    await reserver.reserve(request(account, 2n << 64n, 100n, { chainId: 999, validUntil: new Date(Date.now() - 6 * day) }));
    await reserver.reserve(request(account, 3n << 64n, 100n, { chainId: 31337, validUntil: new Date(Date.now() - 30 * day) }));
    assert.equal(await releaseOrphanedHolds(db(), { configuredChainIds: [31337], olderThanSeconds: 7 * 86_400 }), 1);
    const open = await listHolds(db(), account, { status: "open" });
    assert.equal(open.length, 2);
    assert.ok(!open.some((h) => h.id === old.holdId));
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 800n, heldFen: 200n });
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });
});
