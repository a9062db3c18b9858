/**
 * ERC-7677 `context`: a key's named policies, selected by `sponsorshipPolicyId` or `policyId`; an unknown id or a
 * context field this paymaster does not read is refused at the stub call already; no context means the key's
 * default policy; each policy's spend limits count only what was sponsored under it. Also: the stub call refuses
 * what the final call would certainly refuse (quota, nonce, fee), before any wallet estimates gas.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Address, numberToHex } from "viem";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { ADMIN_TOKEN, type SponsorStack, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { buildUserOperation, newSimpleAccount, newSimpleAccountAddress, userOpJson } from "../../devtools/userOperations";
import { ENTRY_POINT_V07 } from "../chain/addresses";
import type { Database } from "../platform/db/database";
import { contextPolicyId } from "./context";
import { SponsorError } from "./errors";

describe("contextPolicyId", () => {
  it("reads sponsorshipPolicyId or policyId; no context, null or {} select the default", () => {
    assert.equal(contextPolicyId(undefined), undefined);
    assert.equal(contextPolicyId(null), undefined);
    assert.equal(contextPolicyId({}), undefined);
    assert.equal(contextPolicyId({ sponsorshipPolicyId: "sp_launch" }), "sp_launch");
    assert.equal(contextPolicyId({ policyId: "sp_launch" }), "sp_launch");
    assert.equal(contextPolicyId({ policyId: "sp_launch", sponsorshipPolicyId: "sp_launch" }), "sp_launch");
    assert.equal(contextPolicyId({ senderProof: { validUntil: 1, signature: "0x" } }), undefined);
  });

  const refusals: Array<[string, unknown, RegExp]> = [
    ["a string", "sp_launch", /context must be an object such as \{ "sponsorshipPolicyId": "…" \}: got "sp_launch"/],
    ["an array", ["sp_launch"], /context must be an object .*got an array/],
    ["an unknown field", { token: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913" }, /context\.field "token" is not read by this paymaster; it reads sponsorshipPolicyId, policyId, senderProof/],
    ["a misspelt id field", { sponsorshipPolicyID: "sp_launch" }, /context\.field "sponsorshipPolicyID" is not read/],
    ["a number id", { sponsorshipPolicyId: 7 }, /context\.sponsorshipPolicyId must be a policy id \(a non-empty string\): got number/],
    ["an empty id", { policyId: "" }, /context\.policyId must be a policy id/],
    ["two different ids", { sponsorshipPolicyId: "a", policyId: "b" }, /name different policies; pass one of them/],
  ];
  for (const [what, context, message] of refusals) {
    it(`refuses ${what} as invalid_params naming it`, () => {
      assert.throws(
        () => contextPolicyId(context),
        (error: unknown) => error instanceof SponsorError && error.reason === "invalid_params" && message.test(error.message),
      );
    });
  }
});

type RpcAnswer = { result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } };

describeWithDatabases("named policies through ERC-7677 and REST", (db) => {
  let stack: SponsorStack;
  before(async () => {
    stack = await startSponsorStack({ db: db() });
  });
  after(async () => {
    await stack?.stop();
  });

  async function createKey(policy: unknown): Promise<string> {
    const response = await fetch(`${stack.url}/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "named-policies", policy }),
    });
    const text = await response.text();
    assert.equal(response.status, 201, text);
    return (JSON.parse(text) as { key: string }).key;
  }

  async function rpc(key: string, method: string, userOp: unknown, context?: unknown): Promise<RpcAnswer> {
    const response = await fetch(`${stack.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: [userOp, ENTRY_POINT_V07, numberToHex(stack.chain.anvil.chainId), ...(context === undefined ? [] : [context])] }),
    });
    return (await response.json()) as RpcAnswer;
  }

  /** A real counterfactual SimpleAccount's first operation, funded, as a wallet sends it. */
  async function fundedOperation(fen = 1_000_000n): Promise<{ sender: Address; userOp: Record<string, unknown> }> {
    const account = await newSimpleAccount(stack.chain.client);
    await stack.fund(account.address, fen);
    const op = await buildUserOperation(stack.chain.client, account, { calls: [{ to: stack.chain.paymaster, data: "0x" }], paymaster: stack.chain.paymaster });
    return { sender: account.address, userOp: userOpJson(op) };
  }

  const holdsOf = async (database: Database, sender: Address) =>
    (await database.query<{ policy_id: string | null; status: string }>("SELECT policy_id, status FROM holds WHERE account = $1", [sender.toLowerCase()])).rows;

  it("no context is judged by the default policy, and a context's id by the named one it selects", async () => {
    const nobody = "0x000000000000000000000000000000000000dEaD";
    const key = await createKey({ allowedSenders: [nobody], policies: { sp_open: {}, "launch.2026": { maxChargePerOpFen: "1" } } });
    const { sender, userOp } = await fundedOperation();

    for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
      const byDefault = await rpc(key, method, userOp);
      assert.equal(byDefault.error?.code, -32126, JSON.stringify(byDefault));
      assert.equal(byDefault.error?.data?.rule, "sender_not_allowed", "the default policy's allowlist judged it");
    }
    const strict = await rpc(key, "pm_getPaymasterData", userOp, { policyId: "launch.2026" });
    assert.equal(strict.error?.data?.rule, "max_charge_per_op", `the named policy judged it, not the default: ${JSON.stringify(strict)}`);

    const stub = await rpc(key, "pm_getPaymasterStubData", userOp, { sponsorshipPolicyId: "sp_open" });
    assert.ok(stub.result, JSON.stringify(stub.error));
    const signed = await rpc(key, "pm_getPaymasterData", userOp, { sponsorshipPolicyId: "sp_open" });
    assert.ok(signed.result?.paymasterData, JSON.stringify(signed.error));
    assert.deepEqual(await holdsOf(db(), sender), [{ policy_id: "sp_open", status: "open" }], "the hold remembers the policy that judged it");
  });

  it("an unknown policy id is refused at the stub and the final call, over ERC-7677 and REST, with nothing held", async () => {
    const key = await createKey({ policies: { sp_open: {} } });
    const { sender, userOp } = await fundedOperation();
    for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
      for (const context of [{ sponsorshipPolicyId: "sp_0xabc" }, { policyId: "sp_0xabc" }]) {
        const refused = await rpc(key, method, userOp, context);
        assert.equal(refused.error?.code, -32136, JSON.stringify(refused));
        assert.deepEqual(refused.error?.data, { reason: "unknown_policy", policyId: "sp_0xabc" });
        assert.match(refused.error!.message, /this API key has no sponsorship policy "sp_0xabc"/);
      }
    }
    // a key without named policies refuses an id too: the DApp asked for a policy it does not get
    const pimlicoStyle = await rpc(stack.apiKey, "pm_getPaymasterStubData", userOp, { sponsorshipPolicyId: "sp_cheerful_dog" });
    assert.equal(pimlicoStyle.error?.code, -32136, JSON.stringify(pimlicoStyle));
    const ercTwenty = await rpc(stack.apiKey, "pm_getPaymasterStubData", userOp, { token: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913" });
    assert.equal(ercTwenty.error?.code, -32602, JSON.stringify(ercTwenty));
    assert.deepEqual(ercTwenty.error?.data, { reason: "invalid_params", field: "context", unknownFields: ["token"] });

    const rest = await fetch(`${stack.url}/v1/sponsorships`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({ userOp, entryPoint: ENTRY_POINT_V07, chainId: stack.chain.anvil.chainId, context: { sponsorshipPolicyId: "nope" } }),
    });
    assert.equal(rest.status, 400);
    assert.equal(((await rest.json()) as { type: string }).type, "unknown_policy");
    assert.deepEqual(await holdsOf(db(), sender), [], "nothing was held");
  });

  it("each policy's spend limit counts only what was sponsored under it", async () => {
    // learn one operation's worst-case charge, then cap a named policy at one and a half of it
    const probe = await fundedOperation();
    const probed = await rpc(stack.apiKey, "pm_getPaymasterData", probe.userOp);
    assert.ok(probed.result, JSON.stringify(probed.error));
    const charge = await holdAmount(db(), probe.sender);
    const cap = (charge * 3n) / 2n;
    const key = await createKey({ policies: { sp_open: {}, sp_capped: { globalSpendLimit: { fen: cap.toString(), periodSeconds: 86_400 } } } });

    const first = await fundedOperation();
    assert.ok((await rpc(key, "pm_getPaymasterData", first.userOp, { policyId: "sp_open" })).result, "spent under sp_open");
    const second = await fundedOperation();
    const underCap = await rpc(key, "pm_getPaymasterData", second.userOp, { policyId: "sp_capped" });
    assert.ok(underCap.result, `sp_open's spend is not sp_capped's: ${JSON.stringify(underCap.error)}`);
    const third = await fundedOperation();
    const over = await rpc(key, "pm_getPaymasterData", third.userOp, { policyId: "sp_capped" });
    assert.equal(over.error?.data?.rule, "global_spend_limit", JSON.stringify(over));
    const byDefault = await rpc(key, "pm_getPaymasterData", third.userOp);
    assert.ok(byDefault.result, `the default policy has no limit, and sp_capped's spend is not its own: ${JSON.stringify(byDefault.error)}`);
  });

  it("the stub call refuses what the final call would certainly refuse: no quota, a used or later nonce, a fee above the ceiling", async () => {
    const sender = await newSimpleAccountAddress(stack.chain.client);
    const { userOp } = await fundedOperation();
    // another (unfunded) sender with the funded one's operation
    const broke = await rpc(stack.apiKey, "pm_getPaymasterStubData", { ...userOp, sender });
    assert.equal(broke.error?.code, -32127, JSON.stringify(broke));
    assert.deepEqual(broke.error?.data, { reason: "insufficient_quota", availableFen: "0", requiredFen: "1" });

    const ahead = await rpc(stack.apiKey, "pm_getPaymasterStubData", { ...userOp, nonce: "0x1" });
    assert.equal(ahead.error?.code, -32133, JSON.stringify(ahead));
    const greedy = await rpc(stack.apiKey, "pm_getPaymasterStubData", { ...userOp, maxFeePerGas: numberToHex(10n ** 15n), maxPriorityFeePerGas: "0x1" });
    assert.equal(greedy.error?.code, -32125, JSON.stringify(greedy));
    // a stub request without gas limits and fees (asked before estimation) is still answered
    const bare = await rpc(stack.apiKey, "pm_getPaymasterStubData", { sender: userOp.sender, nonce: userOp.nonce, factory: userOp.factory, factoryData: userOp.factoryData, callData: userOp.callData, signature: "0x" });
    assert.ok(bare.result, JSON.stringify(bare.error));
  });
});

async function holdAmount(database: Database, sender: Address): Promise<bigint> {
  const { rows } = await database.query<{ amount_fen: bigint }>("SELECT amount_fen FROM holds WHERE account = $1", [sender.toLowerCase()]);
  return BigInt(rows[0]!.amount_fen);
}
