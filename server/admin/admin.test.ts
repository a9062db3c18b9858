/**
 * The admin API over HTTP against the real app and database: authentication, manual adjustments and their audit,
 * the account, ledger, hold and settlement lists with their filters and pages, and the chart series. Holds and
 * settlements are made with the ledger and the settlement code the service uses (settleEvent), without a chain;
 * chains.test.ts does it against anvil, orders.test.ts through the payment gateways.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, it } from "node:test";
import { type Hex, getAddress } from "viem";
import { type SettleOutcome, settleEvent } from "../sponsorship/settlement";
import type { Database } from "../platform/db/database";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger, creditTopUp, getBalance, hold } from "../ledger/ledger";
import { releaseExpiredHolds } from "../sponsorship/holds";
import { ENTRY_POINT_V07 } from "../chain/addresses";
import { chargeFen } from "../sponsorship/pricing";
import { type AdminClient, type Answer, TEST_ADMIN_TOKEN, startAdminApp } from "../../devtools/testing/adminClient";

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;
const bytes32 = (): Hex => `0x${randomBytes(32).toString("hex")}`;
const QUOTE = { fenPerNative: 2_000_000n, markupBps: 500 };

async function topUp(db: Database, account: string, fen: bigint): Promise<void> {
  await db.transaction((tx) => creditTopUp(tx, { account, orderId: `test-${randomUUID()}`, amountFen: fen }));
}

/** A hold and the operation signed under it, as the sponsor service writes them (without the signature). */
async function signedHold(db: Database, p: { account: string; chainId: number; amountFen: bigint; validForSeconds?: number }): Promise<{ holdId: string; userOpHash: Hex; nonce: bigint }> {
  const holdId = `h_${randomUUID()}`;
  const userOpHash = bytes32();
  const nonce = BigInt(Math.floor(Math.random() * 1e9));
  const validUntil = new Date(Date.now() + (p.validForSeconds ?? 600) * 1000);
  await db.transaction(async (tx) => {
    await hold(tx, { account: p.account, reservationId: `hold:${holdId}:1`, amountFen: p.amountFen });
    await tx.query(
      `INSERT INTO holds (id, chain_id, entry_point, account, nonce, status, amount_fen, max_cost_wei, valid_until)
       VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8)`,
      [holdId, p.chainId, ENTRY_POINT_V07.toLowerCase(), p.account, nonce.toString(), p.amountFen, (10n ** 15n).toString(), validUntil],
    );
    await tx.query(
      `INSERT INTO sponsored_operations (user_op_hash, hold_id, fen_per_native, markup_bps, max_charge_fen, valid_until)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [userOpHash.toLowerCase(), holdId, QUOTE.fenPerNative, QUOTE.markupBps, p.amountFen, validUntil],
    );
  });
  return { holdId, userOpHash, nonce };
}

/** A UserOperationEvent of our paymaster, settled as the settlement worker settles it. */
async function settle(db: Database, chainId: number, p: { account: string; userOpHash?: Hex; nonce?: bigint; gasCostWei: bigint }) {
  return db.transaction((tx) =>
    settleEvent(tx, chainId, {
      entryPoint: ENTRY_POINT_V07,
      userOpHash: p.userOpHash ?? bytes32(),
      sender: p.account,
      nonce: p.nonce ?? 0n,
      success: true,
      actualGasCost: p.gasCostWei,
      actualGasUsed: 100_000n,
      blockNumber: 1n,
      blockHash: bytes32(),
      transactionHash: bytes32(),
      logIndex: 0,
    }),
  );
}

/** Follows nextBefore from the first page to the last. */
async function allPages(client: AdminClient, path: string, limit: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let pages = 0;
  let before: string | null = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const page: Answer = await client.get(`${path}${separator}limit=${limit}${before ? `&before=${encodeURIComponent(before)}` : ""}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.ok(page.body.items.length <= limit);
    ids.push(...page.body.items.map((i: { id?: string; account?: string }) => i.id ?? i.account));
    before = page.body.nextBefore;
    pages++;
  } while (before);
  return { ids, pages };
}

describeWithDatabases("the admin API", (db) => {
  let client: AdminClient;
  let stop: () => Promise<void>;
  before(async () => {
    ({ client, stop } = await startAdminApp(db()));
  });
  after(async () => {
    await stop?.();
  });

  const ADMIN_ROUTES: [string, string][] = [
    ["GET", "/admin/orders"],
    ["GET", `/admin/orders/fp${"0".repeat(24)}`],
    ["GET", "/admin/callbacks"],
    ["GET", "/admin/accounts"],
    ["GET", `/admin/accounts/${"0x" + "1".repeat(40)}/ledger`],
    ["GET", "/admin/holds"],
    ["GET", "/admin/settlements"],
    ["GET", "/admin/refunds"],
    ["GET", "/admin/reconciliation-runs"],
    ["GET", "/admin/audit"],
    ["GET", "/admin/chains"],
    ["GET", "/admin/stats"],
    ["POST", "/admin/adjustments"],
  ];

  it("every admin route answers 401 without the admin token or with a wrong one, and 403 on a server without one", async () => {
    const account = newAccount();
    const body = { account, amountFen: 100, reason: "should never apply" };
    for (const [method, path] of ADMIN_ROUTES) {
      for (const token of [null, "wrong-token-0123456789", `${TEST_ADMIN_TOKEN}x`]) {
        const res = await client.request(method, path, { token, body: method === "POST" ? body : undefined });
        assert.equal(res.status, 401, `${method} ${path} with ${token}`);
        assert.equal(res.body.type, "unauthorized");
        assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/);
      }
    }
    const disabled = await startAdminApp(db(), { ADMIN_TOKEN: undefined });
    try {
      for (const [method, path] of ADMIN_ROUTES) {
        const res = await disabled.client.request(method, path, { body: method === "POST" ? body : undefined });
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.equal(res.body.type, "admin_disabled");
      }
    } finally {
      await disabled.stop();
    }
    assert.equal((await getBalance(db(), account)).availableFen, 0n, "no adjustment went through");
  });

  it("a credit adjustment raises the available balance, with an 'adjust' ledger entry whose memo is the reason, and an audit row naming the request", async () => {
    const account = newAccount();
    await topUp(db(), account, 1_000n);
    const res = await client.post("/admin/adjustments", { account: getAddress(account), amountFen: 250, reason: "  goodwill credit for ticket #4411 " }, { "x-request-id": "req-adjust-1" });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.adjustmentId, /^adj_[0-9a-f-]{36}$/);
    assert.equal(res.body.account, account);
    assert.equal(res.body.amountFen, "250");
    assert.equal(res.body.reason, "goodwill credit for ticket #4411");
    assert.equal(res.body.availableFen, "1250");
    assert.equal(res.body.heldFen, "0");
    assert.equal(res.body.applied, true);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 1_250n, heldFen: 0n });

    const ledger = await client.get(`/admin/accounts/${account}/ledger`);
    assert.equal(ledger.status, 200);
    assert.equal(ledger.body.availableFen, "1250");
    const [adjustEntry, topUpEntry] = ledger.body.items;
    assert.deepEqual(
      { kind: adjustEntry.kind, availableDeltaFen: adjustEntry.availableDeltaFen, heldDeltaFen: adjustEntry.heldDeltaFen, reference: adjustEntry.reference, memo: adjustEntry.memo },
      { kind: "adjust", availableDeltaFen: "250", heldDeltaFen: "0", reference: res.body.adjustmentId, memo: "goodwill credit for ticket #4411" },
    );
    assert.equal(topUpEntry.kind, "topup");

    const audit = await client.get("/admin/audit?limit=1");
    const [action] = audit.body.items;
    assert.equal(action.id, res.body.auditId);
    assert.equal(action.action, "adjustment");
    assert.equal(action.requestId, "req-adjust-1");
    assert.equal(action.ip, "127.0.0.1");
    assert.ok(Math.abs(Date.parse(action.createdAt) - Date.now()) < 60_000);
    assert.deepEqual(action.detail, {
      adjustmentId: res.body.adjustmentId,
      account,
      amountFen: "250",
      reason: "goodwill credit for ticket #4411",
      availableFenBefore: "1000",
      availableFenAfter: "1250",
    });
    assert.ok(!JSON.stringify(action).includes(TEST_ADMIN_TOKEN), "the audit row holds nothing of the token");
  });

  it("a debit adjustment within the available balance lowers it; one beyond it is refused with 409 naming available and requested, and nothing moves", async () => {
    const account = newAccount();
    await topUp(db(), account, 1_000n);
    await signedHold(db(), { account, chainId: 1, amountFen: 600n }); // held fen cannot be adjusted away
    const auditBefore = (await client.get("/admin/audit?limit=1")).body.items[0]?.id;

    const over = await client.post("/admin/adjustments", { account, amountFen: -401, reason: "chargeback" });
    assert.equal(over.status, 409);
    assert.equal(over.body.type, "insufficient_balance");
    assert.equal(over.body.availableFen, "400");
    assert.equal(over.body.requestedFen, "401");
    assert.match(over.body.detail, /available balance is 400 fen/);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 400n, heldFen: 600n });
    assert.equal((await client.get("/admin/audit?limit=1")).body.items[0]?.id, auditBefore, "a refused adjustment is not recorded as done");

    const debit = await client.post("/admin/adjustments", { account, amountFen: "-400", reason: "chargeback" });
    assert.equal(debit.status, 201, JSON.stringify(debit.body));
    assert.equal(debit.body.availableFen, "0");
    assert.equal(debit.body.heldFen, "600");
    const entries = (await client.get(`/admin/accounts/${account}/ledger?kind=adjust`)).body.items;
    assert.deepEqual(entries.map((e: { availableDeltaFen: string; memo: string }) => [e.availableDeltaFen, e.memo]), [["-400", "chargeback"]]);
  });

  it("refuses an adjustment with no or a too short reason, of zero, of a fraction, without an account or with unknown fields (400), and changes nothing", async () => {
    const account = newAccount();
    await topUp(db(), account, 500n);
    const cases: [unknown, RegExp][] = [
      [{ account, amountFen: 100 }, /reason/],
      [{ account, amountFen: 100, reason: "  ok  " }, /reason: must be at least 3 characters/],
      [{ account, amountFen: 100, reason: "x".repeat(201) }, /reason: must be at most 200 characters/],
      [{ account, amountFen: 0, reason: "nothing at all" }, /amountFen: must not be zero/],
      [{ account, amountFen: "-0", reason: "nothing at all" }, /amountFen: must not be zero/],
      [{ account, amountFen: 1.5, reason: "a fraction" }, /amountFen/],
      [{ account, amountFen: "1e3", reason: "not digits" }, /amountFen/],
      [{ amountFen: 100, reason: "who is it for" }, /account/],
      [{ account: "0x1234", amountFen: 100, reason: "bad address" }, /account/],
      [{ account, amountFen: 100, reason: "extra field", who: "me" }, /who|unrecognized/i],
    ];
    for (const [body, detail] of cases) {
      const res = await client.post("/admin/adjustments", body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.type, "invalid_request");
      assert.match(res.body.detail, detail, JSON.stringify(body));
    }
    const notJson = await client.request("POST", "/admin/adjustments", { headers: { "content-type": "application/json" } });
    assert.equal(notJson.status, 400);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 500n, heldFen: 0n });
    const kinds = (await client.get(`/admin/accounts/${account}/ledger`)).body.items.map((e: { kind: string }) => e.kind);
    assert.deepEqual(kinds, ["topup"]);
  });

  it("the same idempotencyKey applies an adjustment once (200 and applied: false on repeats); with other parameters it is a conflict", async () => {
    const account = newAccount();
    const body = { account, amountFen: 300, reason: "compensation", idempotencyKey: `k-${account}` };
    const [a, b] = await Promise.all([client.post("/admin/adjustments", body), client.post("/admin/adjustments", body)]);
    assert.deepEqual([a.status, b.status].sort(), [200, 201]);
    assert.equal(a.body.adjustmentId, `adj:k-${account}`);
    assert.equal(a.body.adjustmentId, b.body.adjustmentId);
    assert.equal(a.body.auditId, b.body.auditId);
    assert.deepEqual([a.body.applied, b.body.applied].sort(), [false, true]);
    assert.equal((await getBalance(db(), account)).availableFen, 300n);
    const audited = (await client.get("/admin/audit?action=adjustment&limit=500")).body.items.filter((x: { detail: { account: string } }) => x.detail.account === account);
    assert.equal(audited.length, 1);

    const other = await client.post("/admin/adjustments", { ...body, amountFen: 301 });
    assert.equal(other.status, 409);
    assert.equal(other.body.type, "conflict");
    assert.equal(other.body.adjustmentId, `adj:k-${account}`);
    assert.equal((await getBalance(db(), account)).availableFen, 300n);
  });

  it("GET /admin/audit lists admin actions newest first, paged, and filtered by action", async () => {
    for (let i = 0; i < 3; i++) assert.equal((await client.post("/admin/adjustments", { account: newAccount(), amountFen: i + 1, reason: `audit page ${i}` })).status, 201);
    const first = await client.get("/admin/audit?limit=2");
    assert.equal(first.body.items.length, 2);
    assert.deepEqual(first.body.items.map((a: { detail: { reason: string } }) => a.detail.reason), ["audit page 2", "audit page 1"]);
    assert.equal(first.body.nextBefore, first.body.items[1].id);
    const second = await client.get(`/admin/audit?limit=1&before=${first.body.nextBefore}`);
    assert.equal(second.body.items[0].detail.reason, "audit page 0");
    const { ids } = await allPages(client, "/admin/audit", 2);
    assert.deepEqual(ids, [...ids].sort((x, y) => Number(BigInt(y) - BigInt(x))), "newest first, no repeats");
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual((await client.get("/admin/audit?action=no_such_action")).body, { items: [], nextBefore: null });
  });

  it("GET /admin/accounts pages accounts by latest activity with their balances", async () => {
    const accounts = [newAccount(), newAccount(), newAccount()];
    for (const [i, account] of accounts.entries()) await topUp(db(), account, BigInt(100 * (i + 1)));
    await client.post("/admin/adjustments", { account: accounts[0], amountFen: 1, reason: "touch it last" });
    const latest = await client.get("/admin/accounts?limit=3");
    assert.deepEqual(
      latest.body.items.map((a: { account: string; availableFen: string; heldFen: string }) => [a.account, a.availableFen, a.heldFen]),
      [
        [accounts[0], "101", "0"],
        [accounts[2], "300", "0"],
        [accounts[1], "200", "0"],
      ],
    );
    assert.equal(latest.body.nextBefore, accounts[1]);
    const { ids, pages } = await allPages(client, "/admin/accounts", 4);
    const { rows } = await db().query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM accounts");
    assert.equal(ids.length, Number(rows[0]!.n), "every account once");
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(pages, Math.ceil(ids.length / 4));
  });

  it("GET /admin/accounts/:address/ledger pages an account's entries newest first, filtered by kind, and shows a zero balance for an unknown account", async () => {
    const account = newAccount();
    for (let i = 1; i <= 5; i++) await topUp(db(), account, BigInt(i));
    await client.post("/admin/adjustments", { account, amountFen: -1, reason: "one off" });
    const { ids, pages } = await allPages(client, `/admin/accounts/${account}/ledger`, 2);
    assert.equal(ids.length, 6);
    assert.equal(pages, 3);
    assert.deepEqual(ids, [...ids].sort((x, y) => Number(BigInt(y) - BigInt(x))));
    const topUps = await client.get(`/admin/accounts/${account}/ledger?kind=topup&limit=500`);
    assert.deepEqual(topUps.body.items.map((e: { availableDeltaFen: string }) => e.availableDeltaFen), ["5", "4", "3", "2", "1"]);
    assert.equal(topUps.body.availableFen, "14");
    const unknown = newAccount();
    assert.deepEqual((await client.get(`/admin/accounts/${unknown}/ledger`)).body, { account: unknown, availableFen: "0", heldFen: "0", items: [], nextBefore: null });
    assert.equal((await client.get("/admin/accounts/0xnothex/ledger")).status, 400);
  });

  it("GET /admin/holds filters by status, account and chain, and pages", async () => {
    const account = newAccount();
    await topUp(db(), account, 10_000n);
    const open = await signedHold(db(), { account, chainId: 7001, amountFen: 100n });
    const open2 = await signedHold(db(), { account, chainId: 7002, amountFen: 200n });
    const toSettle = await signedHold(db(), { account, chainId: 7001, amountFen: 300n });
    const expired = await signedHold(db(), { account, chainId: 7001, amountFen: 400n, validForSeconds: -3_600 });
    assert.equal((await settle(db(), 7001, { account, userOpHash: toSettle.userOpHash, nonce: toSettle.nonce, gasCostWei: 10n ** 14n })).result, "settled");
    assert.ok((await releaseExpiredHolds(db(), { chainId: 7001, chainTime: new Date(), graceSeconds: 0 })) >= 1);

    const ids = async (query: string) => (await client.get(`/admin/holds?${query}`)).body.items.map((h: { id: string }) => h.id);
    assert.deepEqual(await ids(`account=${account}`), [expired.holdId, toSettle.holdId, open2.holdId, open.holdId]);
    assert.deepEqual(await ids(`account=${account}&status=open`), [open2.holdId, open.holdId]);
    assert.deepEqual(await ids(`account=${account}&status=open&chainId=7001`), [open.holdId]);
    assert.deepEqual(await ids(`account=${account}&status=settled`), [toSettle.holdId]);
    assert.deepEqual(await ids(`account=${account}&status=released`), [expired.holdId]);

    const [settled] = (await client.get(`/admin/holds?account=${account}&status=settled`)).body.items;
    assert.deepEqual(
      { chainId: settled.chainId, account: settled.account, amountFen: settled.amountFen, chargedFen: settled.chargedFen, maxCostWei: settled.maxCostWei, nonce: settled.nonce },
      { chainId: 7001, account, amountFen: "300", chargedFen: chargeFen(10n ** 14n, QUOTE).toString(), maxCostWei: (10n ** 15n).toString(), nonce: toSettle.nonce.toString() },
    );
    const page1 = await client.get(`/admin/holds?account=${account}&limit=3`);
    assert.equal(page1.body.nextBefore, open2.holdId);
    const page2 = await client.get(`/admin/holds?account=${account}&limit=3&before=${page1.body.nextBefore}`);
    assert.deepEqual(page2.body, { items: [page2.body.items[0]], nextBefore: null });
    assert.equal(page2.body.items[0].id, open.holdId);
    const noSuchHold = await client.get(`/admin/holds?before=h_${randomUUID()}`);
    assert.equal(noSuchHold.status, 400);
    assert.match(noSuchHold.body.detail, /before: no hold/);
  });

  it("GET /admin/settlements filters by chain, status and unknown operations (no hold), and pages", async () => {
    const account = newAccount();
    await topUp(db(), account, 10_000n);
    const signed = await signedHold(db(), { account, chainId: 7101, amountFen: 1_000n });
    const known = await settle(db(), 7101, { account, userOpHash: signed.userOpHash, nonce: signed.nonce, gasCostWei: 2n * 10n ** 14n });
    const unknown = await settle(db(), 7101, { account, gasCostWei: 3n * 10n ** 14n });
    const elsewhere = await settle(db(), 7102, { account, gasCostWei: 10n ** 14n });
    assert.equal(known.result, "settled");
    assert.equal(unknown.result, "unknown");
    const id = (o: SettleOutcome) => ("settlementId" in o ? o.settlementId.toString() : "");

    const list = async (query: string) => (await client.get(`/admin/settlements?${query}`)).body.items;
    assert.deepEqual((await list(`account=${account}`)).map((s: { id: string }) => s.id), [id(elsewhere), id(unknown), id(known)]);
    assert.deepEqual((await list(`account=${account}&chainId=7101`)).map((s: { id: string }) => s.id), [id(unknown), id(known)]);
    assert.deepEqual((await list(`account=${account}&chainId=7101&unknown=1`)).map((s: { id: string }) => s.id), [id(unknown)]);
    assert.deepEqual((await list(`account=${account}&unknown=0`)).map((s: { id: string }) => s.id), [id(known)]);
    assert.deepEqual(await list(`account=${account}&status=reorged`), []);

    const [row] = await list(`account=${account}&unknown=0`);
    assert.deepEqual(
      {
        chainId: row.chainId,
        holdId: row.holdId,
        unknown: row.unknown,
        userOpHash: row.userOpHash,
        actualGasCostWei: row.actualGasCostWei,
        chargedFen: row.chargedFen,
        releasedFen: row.releasedFen,
        status: row.status,
        success: row.success,
      },
      {
        chainId: 7101,
        holdId: signed.holdId,
        unknown: false,
        userOpHash: signed.userOpHash.toLowerCase(),
        actualGasCostWei: (2n * 10n ** 14n).toString(),
        chargedFen: chargeFen(2n * 10n ** 14n, QUOTE).toString(),
        releasedFen: (1_000n - chargeFen(2n * 10n ** 14n, QUOTE)).toString(),
        status: "settled",
        success: true,
      },
    );
    const [unknownRow] = await list(`account=${account}&unknown=1`);
    assert.equal(unknownRow.holdId, null);
    assert.equal(unknownRow.chargedFen, "0");

    const first = await client.get(`/admin/settlements?account=${account}&limit=2`);
    assert.equal(first.body.nextBefore, id(unknown));
    const rest = await client.get(`/admin/settlements?account=${account}&limit=2&before=${first.body.nextBefore}`);
    assert.deepEqual(rest.body.items.map((s: { id: string }) => s.id), [id(known)]);
    assert.equal(rest.body.nextBefore, null);
  });

  it("GET /admin/stats counts top-ups and settled operations per hour and per day (UTC), every bucket present", async () => {
    const now = Date.now();
    const since = new Date(now - 6 * 3_600_000).toISOString();
    const until = new Date(now + 3_600_000).toISOString();
    const range = `since=${since}&until=${until}`;
    const before = (await client.get(`/admin/stats?bucket=hour&${range}`)).body;

    const account = newAccount();
    await topUp(db(), account, 1_500n);
    await topUp(db(), account, 500n);
    const signed = await signedHold(db(), { account, chainId: 7201, amountFen: 2_000n });
    const settled = await settle(db(), 7201, { account, userOpHash: signed.userOpHash, nonce: signed.nonce, gasCostWei: 5n * 10n ** 14n });
    assert.equal(settled.result, "settled");
    const charged = chargeFen(5n * 10n ** 14n, QUOTE);
    // an operation settled three hours ago lands in that hour's bucket
    const old = await settle(db(), 7201, { account, gasCostWei: 7n });
    await db().query("UPDATE settlements SET created_at = now() - interval '3 hours' WHERE id = $1", ["settlementId" in old ? old.settlementId : 0n]);

    const stats = await client.get(`/admin/stats?bucket=hour&${range}`);
    assert.equal(stats.status, 200, JSON.stringify(stats.body));
    const s = stats.body;
    assert.equal(s.bucket, "hour");
    assert.equal(s.since, new Date(Math.floor(Date.parse(since) / 3_600_000) * 3_600_000).toISOString());
    assert.equal(s.until, until);
    assert.ok(s.series.length === 7 || s.series.length === 8, `${s.series.length} hourly buckets`);
    for (const [i, point] of s.series.entries()) assert.equal(Date.parse(point.start), Date.parse(s.since) + i * 3_600_000);
    const delta = (field: string) => BigInt(s.totals[field]) - BigInt(before.totals[field]);
    assert.equal(delta("topUpCount"), 2n);
    assert.equal(delta("topUpFen"), 2_000n);
    assert.equal(delta("settledCount"), 2n);
    assert.equal(delta("unknownCount"), 1n);
    assert.equal(delta("chargedFen"), charged);
    assert.equal(delta("gasCostWei"), 5n * 10n ** 14n + 7n);
    assert.equal(s.totals.topUpFen, s.series.reduce((sum: bigint, p: { topUpFen: string }) => sum + BigInt(p.topUpFen), 0n).toString());

    const { rows } = await db().query<{ created_at: Date }>("SELECT created_at FROM settlements WHERE id = $1", ["settlementId" in old ? old.settlementId : 0n]);
    const oldBucket = new Date(Math.floor(rows[0]!.created_at.getTime() / 3_600_000) * 3_600_000).toISOString();
    const point = s.series.find((p: { start: string }) => p.start === oldBucket);
    assert.ok(point && point.settledCount >= 1 && BigInt(point.gasCostWei) >= 7n, `the bucket ${oldBucket} holds the old settlement`);

    const days = await client.get("/admin/stats?bucket=day");
    assert.equal(days.body.series.length, 30);
    const today = days.body.series[days.body.series.length - 1];
    assert.equal(today.start, new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000).toISOString());
    assert.ok(today.topUpCount >= 2 && BigInt(today.topUpFen) >= 2_000n);
    assert.ok(BigInt(days.body.totals.chargedFen) >= charged);

    const defaults = await client.get("/admin/stats");
    assert.equal(defaults.body.bucket, "hour");
    assert.equal(defaults.body.series.length, 48);
  });

  it("refuses bad list and stats parameters with 400 naming them", async () => {
    const cases: [string, RegExp][] = [
      ["/admin/orders?limit=0", /limit/],
      ["/admin/orders?limit=501", /limit/],
      ["/admin/orders?limit=ten", /limit/],
      ["/admin/orders?limit=1&limit=2", /limit/],
      ["/admin/orders?stauts=paid", /stauts|unrecognized/i],
      ["/admin/orders?status=refunded", /status/],
      ["/admin/orders?before=123", /before: is not an order id/],
      [`/admin/orders?before=fp${"0".repeat(24)}`, /before: no order/],
      ["/admin/orders?account=0x12", /account/],
      ["/admin/holds?status=expired", /status/],
      ["/admin/settlements?unknown=yes", /unknown/],
      ["/admin/settlements?chainId=0x1", /chainId/],
      ["/admin/audit?before=abc", /before/],
      [`/admin/accounts?before=${newAccount()}`, /before: no account/],
      ["/admin/stats?bucket=week", /bucket/],
      ["/admin/stats?since=yesterday", /since/],
      ["/admin/stats?since=2030-01-01T00:00:00Z&until=2029-01-01T00:00:00Z", /since must be before until/],
      ["/admin/stats?bucket=hour&since=2000-01-01T00:00:00Z", /at most 1000/],
      ["/admin/orders/not-an-order", /not an order id/],
    ];
    for (const [path, detail] of cases) {
      const res = await client.get(path);
      assert.equal(res.status, 400, path);
      assert.equal(res.body.type, "invalid_request", path);
      assert.match(res.body.detail, detail, path);
    }
    const missing = await client.get(`/admin/orders/fp${"0".repeat(24)}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.type, "not_found");
  });

  it("GET /admin/chains answers an empty list when no chain is configured", async () => {
    assert.deepEqual((await client.get("/admin/chains")).body, { chains: [] });
  });

  it("the ledger is consistent after all of the above", async () => {
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });
});
