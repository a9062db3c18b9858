import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { it } from "node:test";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { InsufficientBalanceError, adjust, charge, checkLedger, creditTopUp, debitRefund, getBalance, hold, recentEntries, release } from "./ledger";

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;

describeWithDatabases("ledger", (db) => {
  it("a top-up credits available balance once, however often it is applied", async () => {
    const account = newAccount();
    const first = await db().transaction((tx) => creditTopUp(tx, { account, orderId: "order-1", amountFen: 1000n }));
    const again = await db().transaction((tx) => creditTopUp(tx, { account, orderId: "order-1", amountFen: 1000n }));
    assert.equal(first.applied, true);
    assert.equal(again.applied, false);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 1000n, heldFen: 0n });
  });

  it("hold, charge and release move money between available and held and out", async () => {
    const account = newAccount();
    await db().transaction(async (tx) => {
      await creditTopUp(tx, { account, orderId: `o-${account}`, amountFen: 1000n });
      await hold(tx, { account, reservationId: `r-${account}`, amountFen: 300n });
    });
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 700n, heldFen: 300n });
    await db().transaction(async (tx) => {
      await charge(tx, { account, reservationId: `r-${account}`, amountFen: 120n });
      await release(tx, { account, reservationId: `r-${account}`, amountFen: 180n });
    });
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 880n, heldFen: 0n });
    const kinds = (await recentEntries(db(), account)).map((e) => e.kind);
    assert.deepEqual(kinds, ["release", "charge", "hold", "topup"]);
  });

  it("no operation can take a balance below zero, and a refused one leaves no entry", async () => {
    const account = newAccount();
    await db().transaction((tx) => creditTopUp(tx, { account, orderId: `o-${account}`, amountFen: 100n }));
    await assert.rejects(
      db().transaction((tx) => hold(tx, { account, reservationId: `r-${account}`, amountFen: 101n })),
      (e: unknown) => e instanceof InsufficientBalanceError && e.balance === "available" && e.requiredFen === 101n,
    );
    await assert.rejects(db().transaction((tx) => charge(tx, { account, reservationId: `c-${account}`, amountFen: 1n })), InsufficientBalanceError);
    await assert.rejects(db().transaction((tx) => debitRefund(tx, { account, refundId: `f-${account}`, amountFen: 101n })), InsufficientBalanceError);
    await assert.rejects(db().transaction((tx) => adjust(tx, { account, adjustmentId: `a-${account}`, amountFen: -101n, reason: "test" })), InsufficientBalanceError);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 100n, heldFen: 0n });
    assert.equal((await recentEntries(db(), account)).length, 1);
  });

  it("the database itself refuses a negative balance, whatever the application does", async () => {
    const account = newAccount();
    await db().transaction((tx) => creditTopUp(tx, { account, orderId: `o-${account}`, amountFen: 5n }));
    await assert.rejects(db().query("UPDATE accounts SET available_fen = -1 WHERE address = $1", [account]), /available_not_negative/);
  });

  it("entries are append-only: updates and deletes are refused by the database", async () => {
    const account = newAccount();
    await db().transaction((tx) => creditTopUp(tx, { account, orderId: `o-${account}`, amountFen: 5n }));
    await assert.rejects(db().query("UPDATE ledger_entries SET available_delta_fen = 500 WHERE account = $1", [account]), /append-only/);
    await assert.rejects(db().query("DELETE FROM ledger_entries WHERE account = $1", [account]), /append-only/);
  });

  it("an adjustment needs a reason, which is recorded", async () => {
    const account = newAccount();
    await assert.rejects(db().transaction((tx) => adjust(tx, { account, adjustmentId: "adj-x", amountFen: 5n, reason: " " })), /needs a reason/);
    await db().transaction((tx) => adjust(tx, { account, adjustmentId: `adj-${account}`, amountFen: 50n, reason: "goodwill for ticket 42" }));
    const [entry] = await recentEntries(db(), account);
    assert.equal(entry?.memo, "goodwill for ticket 42");
    assert.equal(entry?.availableDeltaFen, 50n);
  });

  it("refuses malformed accounts and non-positive amounts", async () => {
    await assert.rejects(db().transaction((tx) => creditTopUp(tx, { account: "0x123", orderId: "o", amountFen: 1n })), /not an account address/);
    await assert.rejects(db().transaction((tx) => creditTopUp(tx, { account: newAccount(), orderId: "o", amountFen: 0n })), /positive/);
    await assert.rejects(db().transaction((tx) => hold(tx, { account: newAccount(), reservationId: "r", amountFen: -5n })), /positive/);
  });

  it("concurrent holds never overspend: exactly as many succeed as the balance covers", async () => {
    const account = newAccount();
    await db().transaction((tx) => creditTopUp(tx, { account, orderId: `o-${account}`, amountFen: 1000n }));
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => db().transaction((tx) => hold(tx, { account, reservationId: `r-${account}-${i}`, amountFen: 100n }))),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 10);
    for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof InsufficientBalanceError);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 0n, heldFen: 1000n });
  });

  it("the check recomputes every balance from the entries and finds a tampered cache", async () => {
    const clean = await checkLedger(db());
    assert.deepEqual(clean.mismatches, []);
    assert.ok(clean.entries > 0);
    const account = newAccount();
    await db().transaction((tx) => creditTopUp(tx, { account, orderId: `o-${account}`, amountFen: 70n }));
    await db().query("UPDATE accounts SET available_fen = 71 WHERE address = $1", [account]);
    const dirty = await checkLedger(db());
    assert.deepEqual(dirty.mismatches, [{ account, cachedAvailableFen: 71n, ledgerAvailableFen: 70n, cachedHeldFen: 0n, ledgerHeldFen: 0n }]);
    await db().query("UPDATE accounts SET available_fen = 70 WHERE address = $1", [account]);
  });
});
