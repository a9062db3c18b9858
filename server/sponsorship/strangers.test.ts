/**
 * What a stranger can do to a sender's quota with an API key they hold — a second key, or the DApp's own key,
 * which is public in its front end — through HTTP against the real app on anvil: the lock-out reproduction (holds
 * absorbing the balance, re-requests to stretch them) no longer stops the owner; nonces that are used or ahead are
 * refused; fees and preVerificationGas that would pay a self-bundler are refused; the per-sender rate limit is the
 * sender's from one client; and a key can require proof of control, signed by the DApp's backend or by the account
 * itself (ERC-1271, ERC-6492, a SimpleAccount's owner).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Address, type Hex, concat, encodeAbiParameters, encodeDeployData, getContractAddress, numberToHex, padHex, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { handleOps, newSimpleAccountAddress } from "../../devtools/userOperations";
import { DEV_KEYS, localClients } from "../../devtools/chain/localChain";
import { loadProjectArtifact } from "../chain/artifacts";
import { DETERMINISTIC_DEPLOYER, ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07 } from "../chain/addresses";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger, getBalance } from "../ledger/ledger";
import { ADMIN_TOKEN, type SponsorStack, TEST_PRICE, sponsoredOperation, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { SPONSOR_ERROR_CODES } from "./errors";
import { listHolds } from "./holds";
import { decodePaymasterData } from "./signing/paymasterData";
import { preVerificationGasNeeded } from "./preVerificationGas";
import { holdFen } from "./pricing";
import { senderProofTypedData } from "./senderProof";

const CHAIN_ID = 31337;
type RpcResponse = { result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } };

type Gas = { callGasLimit: bigint; verificationGasLimit: bigint; preVerificationGas: bigint; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint };

function userOp(sender: Address, gas: Gas, nonceKey: bigint): Record<string, string> {
  return {
    sender,
    nonce: numberToHex(nonceKey << 64n),
    callData: "0x",
    callGasLimit: numberToHex(gas.callGasLimit),
    verificationGasLimit: numberToHex(gas.verificationGasLimit),
    preVerificationGas: numberToHex(gas.preVerificationGas),
    maxFeePerGas: numberToHex(gas.maxFeePerGas),
    maxPriorityFeePerGas: numberToHex(gas.maxPriorityFeePerGas),
    signature: "0x",
  };
}

/** The hold a sponsorship of `gas` takes at the test price (paymaster limits: the chain's defaults). */
const holdOf = (gas: Gas) => holdFen({ ...gas, paymasterVerificationGasLimit: 60_000n, paymasterPostOpGasLimit: 0n }, TEST_PRICE);

async function call(stack: SponsorStack, p: { op: Record<string, string>; apiKey?: string; ip: string; method?: string; context?: unknown }): Promise<RpcResponse> {
  const response = await fetch(`${stack.url}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": p.apiKey ?? stack.apiKey, "x-forwarded-for": p.ip },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: p.method ?? "pm_getPaymasterData", params: [p.op, ENTRY_POINT_V07, numberToHex(CHAIN_ID), p.context ?? {}] }),
  });
  assert.equal(response.status, 200);
  return (await response.json()) as RpcResponse;
}

async function createKey(stack: SponsorStack, policy: Record<string, unknown> = {}): Promise<string> {
  const response = await fetch(`${stack.url}/admin/api-keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "another dapp", policy }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return ((await response.json()) as { key: string }).key;
}

const counterfactualAddress = (stack: SponsorStack): Promise<Address> => newSimpleAccountAddress(stack.chain.client);

describeWithDatabases("strangers with an API key", (db) => {
  let stack: SponsorStack;
  let gas: Gas;
  /** How far the app's clock runs ahead of the real one (a test moves it to the end of a signature's window). */
  let clockAheadMs = 0;
  before(async () => {
    stack = await startSponsorStack({
      db: db(),
      env: { TRUST_PROXY: "1", RATE_LIMIT_IP_PER_MINUTE: "0", RATE_LIMIT_API_KEY_PER_MINUTE: "0" },
      app: { now: () => new Date(Date.now() + clockAheadMs) },
    });
    const gasPrice = await stack.chain.client.getGasPrice();
    gas = { callGasLimit: 100_000n, verificationGasLimit: 400_000n, preVerificationGas: 60_000n, maxFeePerGas: gasPrice, maxPriorityFeePerGas: 1_000_000_000n };
  });
  after(async () => {
    await stack?.stop();
  });

  it("the lock-out reproduction — a second key taking MAX_HOLDS_PER_SENDER holds that absorb the balance, then re-asking to stretch them — no longer stops the owner", async () => {
    const sender = await counterfactualAddress(stack);
    const one = holdOf(gas);
    await stack.fund(sender, 8n * one); // exactly MAX_HOLDS_PER_SENDER (8) holds' worth
    const strangerKey = await createKey(stack);

    const strangerFrom = async (ip: string, keys: bigint[]) => Promise.all(keys.map((k) => call(stack, { op: userOp(sender, gas, k), apiKey: strangerKey, ip })));
    const first = await strangerFrom("198.51.100.7", [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n]);
    assert.equal(first.filter((r) => r.result).length, 2, "one client gets MAX_HOLDS_PER_SENDER_PER_IP holds of a sender");
    for (const r of first.filter((r) => r.error)) {
      assert.equal(r.error!.code, SPONSOR_ERROR_CODES.too_many_holds);
      assert.equal(r.error!.data?.scope, "ip");
    }
    const second = await strangerFrom("198.51.100.8", [8n, 9n, 10n]);
    const third = await strangerFrom("198.51.100.9", [11n, 12n]);
    const taken = [...first, ...second, ...third].filter((r) => r.result);
    assert.equal(taken.length, 4, "and one API key MAX_HOLDS_PER_SENDER_PER_API_KEY, from however many clients");
    assert.ok(third.every((r) => r.error?.data?.scope === "apiKey"));

    // re-asking for a held nonce later signs with the same window: the hold is not stretched
    const firstWindow = decodePaymasterData(taken[0]!.result!.paymasterData as Hex).validUntil;
    await new Promise((r) => setTimeout(r, 1_100));
    const again = await call(stack, { op: userOp(sender, { ...gas, callGasLimit: gas.callGasLimit + 1n }, 0n), apiKey: strangerKey, ip: "198.51.100.7" });
    assert.ok(again.result, JSON.stringify(again.error));
    assert.equal(decodePaymasterData(again.result.paymasterData as Hex).validUntil, firstWindow);
    const heldBefore = await listHolds(db(), sender, { status: "open" });
    assert.ok(heldBefore.every((h) => Math.floor(h.validUntil.getTime() / 1000) <= firstWindow + 2), "no hold's window moved");

    // the owner, through the DApp's own key from their own client, is sponsored
    const owner = await call(stack, { op: userOp(sender, gas, 100n), ip: "203.0.113.20" });
    assert.ok(owner.result, `the owner was refused: ${JSON.stringify(owner.error)}`);
    const balance = await getBalance(db(), sender);
    assert.equal(balance.heldFen, 5n * one + (holdOf({ ...gas, callGasLimit: gas.callGasLimit + 1n }) - one));
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("the DApp's own public key in a stranger's hands takes only that client's share; the owner on the same key is still sponsored", async () => {
    const sender = await counterfactualAddress(stack);
    await stack.fund(sender, 8n * holdOf(gas));
    const stranger = await Promise.all([0n, 1n, 2n, 3n].map((k) => call(stack, { op: userOp(sender, gas, k), ip: "198.51.100.30" })));
    assert.equal(stranger.filter((r) => r.result).length, 2);
    const owner = await call(stack, { op: userOp(sender, gas, 50n), ip: "203.0.113.30" });
    assert.ok(owner.result, JSON.stringify(owner.error));
  });

  it("a replacement when too little of its hold's window is left is refused nonce_held, never signed with a longer window", async () => {
    const sender = await counterfactualAddress(stack);
    await stack.fund(sender, 8n * holdOf(gas));
    const first = await call(stack, { op: userOp(sender, gas, 0n), ip: "203.0.113.15" });
    assert.ok(first.result, JSON.stringify(first.error));
    const window = decodePaymasterData(first.result.paymasterData as Hex).validUntil;
    clockAheadMs = (window - 5) * 1000 - Date.now();
    try {
      const late = await call(stack, { op: userOp(sender, { ...gas, callGasLimit: gas.callGasLimit + 1n }, 0n), ip: "203.0.113.15" });
      assert.equal(late.error?.code, SPONSOR_ERROR_CODES.nonce_held, JSON.stringify(late));
      assert.equal(late.error!.data?.validUntil, window);
      // another nonce key is sponsored as usual
      assert.ok((await call(stack, { op: userOp(sender, gas, 1n), ip: "203.0.113.15" })).result);
    } finally {
      clockAheadMs = 0;
    }
  });

  it("IPv6 addresses of one /64 count as one client: rotating through them takes no more holds", async () => {
    const sender = await counterfactualAddress(stack);
    await stack.fund(sender, 8n * holdOf(gas));
    const answers = await Promise.all([0n, 1n, 2n, 3n, 4n].map((k) => call(stack, { op: userOp(sender, gas, k), ip: `2001:db8:77:1::${(k + 1n).toString(16)}` })));
    assert.equal(answers.filter((r) => r.result).length, 2);
    assert.ok(answers.filter((r) => r.error).every((r) => r.error!.data?.scope === "ip"));
  });

  it("a stranger exhausting the per-sender rate limit from their client does not rate-limit the owner's", async () => {
    const sender = await counterfactualAddress(stack);
    await stack.fund(sender, holdOf(gas));
    const stub = (ip: string) => call(stack, { op: userOp(sender, gas, 0n), ip, method: "pm_getPaymasterStubData" });
    const refusals: number[] = [];
    for (let i = 0; i < 70; i++) {
      const r = await stub("198.51.100.40");
      if (r.error) refusals.push(r.error.code);
    }
    assert.ok(refusals.length > 0 && refusals.every((c) => c === SPONSOR_ERROR_CODES.rate_limited), "the stranger's client is limited");
    assert.ok((await stub("203.0.113.40")).result, "the owner's client is not");
  });

  it("a nonce the sender has used is refused as nonce_used, one ahead of its next as nonce_not_next; nothing is held", async () => {
    const bundler = localClients(stack.chain.anvil.rpcUrl, stack.chain.anvil.chainId, DEV_KEYS.bundler).wallet;
    const landed = await sponsoredOperation(stack, 100_000n);
    await handleOps(stack.chain.client, bundler, [landed.op]);
    const op = (nonce: bigint) => ({ ...userOp(landed.simpleAccount.address, gas, 0n), nonce: numberToHex(nonce) });
    const used = await call(stack, { op: op(landed.op.nonce), ip: "203.0.113.50" });
    assert.equal(used.error?.code, SPONSOR_ERROR_CODES.nonce_used, JSON.stringify(used));
    assert.match(used.error!.message, /already used; the sender's next nonce for that key is 1/);
    assert.equal(used.error!.data?.currentNonce, numberToHex(landed.op.nonce + 1n));
    const ahead = await call(stack, { op: op(landed.op.nonce + 2n), ip: "203.0.113.50" });
    assert.equal(ahead.error?.code, SPONSOR_ERROR_CODES.nonce_not_next);
    const refusedNonces = new Set([landed.op.nonce.toString(), (landed.op.nonce + 2n).toString()]);
    const holds = await listHolds(db(), landed.account);
    assert.equal(holds.filter((h) => refusedNonces.has(h.nonce) && h.id !== landed.holdId).length, 0, "nothing was held for the refused nonces");
    assert.ok((await call(stack, { op: op(landed.op.nonce + 1n), ip: "203.0.113.50" })).result, "the next one is sponsored");
  });

  it("a priority fee above the chain's, or a preVerificationGas above what the operation needs, is refused: quota must not turn into a bundler's ETH", async () => {
    const sender = await counterfactualAddress(stack);
    await stack.fund(sender, 1_000_000n);
    const tip = await stack.chain.client.estimateMaxPriorityFeePerGas();
    const greedyTip = await call(stack, { op: userOp(sender, { ...gas, maxFeePerGas: gas.maxFeePerGas + 4n * tip, maxPriorityFeePerGas: 4n * tip }, 0n), ip: "203.0.113.60" });
    assert.equal(greedyTip.error?.code, SPONSOR_ERROR_CODES.fee_too_high, JSON.stringify(greedyTip));
    assert.equal(greedyTip.error!.data?.field, "maxPriorityFeePerGas");
    const needed = preVerificationGasNeeded({ sender, nonce: 1n << 64n, callData: "0x", signature: "0x" }, { paymaster: stack.chain.paymaster, version: "0.7" });
    const padded = await call(stack, { op: userOp(sender, { ...gas, preVerificationGas: 3n * needed }, 1n), ip: "203.0.113.60" });
    assert.equal(padded.error?.code, SPONSOR_ERROR_CODES.gas_cap_exceeded, JSON.stringify(padded));
    assert.equal(padded.error!.data?.field, "preVerificationGas");
    assert.equal(padded.error!.data?.cap, ((needed * 200n) / 100n).toString());
    // a long dummy signature does not raise the ceiling: the account's real one may be short (the paymaster never signs it)
    const withLongDummy = { ...userOp(sender, { ...gas, preVerificationGas: 2n * needed + 20_000n }, 3n), signature: `0x${"ab".repeat(4_000)}` };
    const inflated = await call(stack, { op: withLongDummy, ip: "203.0.113.60" });
    assert.equal(inflated.error?.data?.field, "preVerificationGas", JSON.stringify(inflated));
    assert.equal((await getBalance(db(), sender)).heldFen, 0n);
    assert.ok((await call(stack, { op: userOp(sender, { ...gas, preVerificationGas: needed }, 2n), ip: "203.0.113.60" })).result, "what it needs is sponsored");
  });

  describe("a key that requires proof of control (policy senderProof)", () => {
    const backend = privateKeyToAccount(generatePrivateKey());
    let proofKey: string;
    before(async () => {
      proofKey = await createKey(stack, { senderProof: { signers: [backend.address], account: true, maxValiditySeconds: 600 } });
    });
    const proof = async (signer: { signTypedData: typeof backend.signTypedData }, sender: Address, validUntil = Math.floor(Date.now() / 1000) + 300) => ({
      senderProof: { validUntil, signature: await signer.signTypedData(senderProofTypedData({ chainId: CHAIN_ID, paymaster: stack.chain.paymaster, sender, validUntil })) },
    });
    const rule = (r: RpcResponse) => (r.error?.code === SPONSOR_ERROR_CODES.policy_rejected ? r.error.data?.rule : `not refused: ${JSON.stringify(r)}`);

    it("refuses a request without a proof, or with a wrong, expired or too long one, before anything is held", async () => {
      const sender = await counterfactualAddress(stack);
      await stack.fund(sender, 1_000_000n);
      const ask = (context: unknown, method?: string) => call(stack, { op: userOp(sender, gas, 0n), apiKey: proofKey, ip: "203.0.113.70", context, method });
      assert.equal(rule(await ask({})), "sender_proof_missing");
      assert.equal(rule(await ask({}, "pm_getPaymasterStubData")), "sender_proof_missing", "the stub asks for it too");
      assert.equal(rule(await ask({ senderProof: { validUntil: "soon", signature: "0x" } })), "sender_proof_invalid");
      assert.equal(rule(await ask(await proof(privateKeyToAccount(generatePrivateKey()), sender))), "sender_proof_rejected", "a stranger's signature");
      assert.equal(rule(await ask(await proof(backend, await counterfactualAddress(stack)))), "sender_proof_rejected", "a proof for another sender");
      assert.equal(rule(await ask(await proof(backend, sender, Math.floor(Date.now() / 1000) - 1))), "sender_proof_expired");
      assert.equal(rule(await ask(await proof(backend, sender, Math.floor(Date.now() / 1000) + 3_600))), "sender_proof_invalid", "longer than maxValiditySeconds");
      assert.equal((await getBalance(db(), sender)).heldFen, 0n);
    });

    it("sponsors with a proof signed by the DApp's backend, for any sender; another key that trusts another backend does not accept it", async () => {
      const sender = await counterfactualAddress(stack);
      await stack.fund(sender, 1_000_000n);
      const context = await proof(backend, sender);
      const r = await call(stack, { op: userOp(sender, gas, 0n), apiKey: proofKey, ip: "203.0.113.71", context });
      assert.ok(r.result, JSON.stringify(r.error));
      // the same proof, already checked once, presented to a key whose policy trusts only another signer
      const otherKey = await createKey(stack, { senderProof: { signers: [privateKeyToAccount(generatePrivateKey()).address] } });
      assert.equal(rule(await call(stack, { op: userOp(sender, gas, 1n), apiKey: otherKey, ip: "203.0.113.71", context })), "sender_proof_rejected");
    });

    it("sponsors with a proof signed by the account: a deployed SimpleAccount's owner, an ERC-1271 wallet, and an undeployed one through ERC-6492", async () => {
      const bundler = localClients(stack.chain.anvil.rpcUrl, stack.chain.anvil.chainId, DEV_KEYS.bundler).wallet;
      // a SimpleAccount (no ERC-1271 in v0.7): its owner() key signs
      const ownerKey = generatePrivateKey();
      const simple = await toSimpleSmartAccount({ client: stack.chain.client, owner: privateKeyToAccount(ownerKey), entryPoint: { address: ENTRY_POINT_V07, version: "0.7" }, factoryAddress: SIMPLE_ACCOUNT_FACTORY_V07 });
      const deployed = await sponsoredOperation(stack, 100_000n, { account: simple });
      await handleOps(stack.chain.client, bundler, [deployed.op]);
      const asOwner = await call(stack, { op: userOp(simple.address, gas, 7n), apiKey: proofKey, ip: "203.0.113.72", context: await proof(privateKeyToAccount(ownerKey), simple.address) });
      assert.ok(asOwner.result, JSON.stringify(asOwner.error));

      // an ERC-1271 wallet, deployed through the deterministic deployer; and the same kind before its deployment
      const walletOwner = privateKeyToAccount(generatePrivateKey());
      const { abi, bytecode } = loadProjectArtifact("test/TestErc1271Wallet.sol", "TestErc1271Wallet");
      const initCode = encodeDeployData({ abi, bytecode, args: [walletOwner.address] });
      const at = (salt: Hex) => getContractAddress({ opcode: "CREATE2", from: DETERMINISTIC_DEPLOYER, salt, bytecode: initCode });
      const deployedSalt = padHex(toHex(1), { size: 32 });
      // wait for the receipt: a loaded machine may answer the next read before anvil has mined the transaction
      const deployTx = await stack.chain.owner.sendTransaction({ to: DETERMINISTIC_DEPLOYER, data: concat([deployedSalt, initCode]) });
      assert.equal((await stack.chain.client.waitForTransactionReceipt({ hash: deployTx })).status, "success");
      const wallet = at(deployedSalt);
      assert.ok(await stack.chain.client.getCode({ address: wallet }));
      const by1271 = await call(stack, { op: userOp(wallet, gas, 0n), apiKey: proofKey, ip: "203.0.113.73", context: await proof(walletOwner, wallet) });
      assert.equal(by1271.error?.data?.reason, "insufficient_quota", `past the proof check: ${JSON.stringify(by1271.error)}`);

      const laterSalt = padHex(toHex(2), { size: 32 });
      const counterfactual = at(laterSalt);
      const validUntil = Math.floor(Date.now() / 1000) + 300;
      const inner = await walletOwner.signTypedData(senderProofTypedData({ chainId: CHAIN_ID, paymaster: stack.chain.paymaster, sender: counterfactual, validUntil }));
      const wrapped = concat([
        encodeAbiParameters([{ type: "address" }, { type: "bytes" }, { type: "bytes" }], [DETERMINISTIC_DEPLOYER, concat([laterSalt, initCode]), inner]),
        "0x6492649264926492649264926492649264926492649264926492649264926492",
      ]);
      const by6492 = await call(stack, { op: userOp(counterfactual, gas, 0n), apiKey: proofKey, ip: "203.0.113.74", context: { senderProof: { validUntil, signature: wrapped } } });
      assert.equal(by6492.error?.data?.reason, "insufficient_quota", `past the proof check: ${JSON.stringify(by6492.error)}`);
      assert.equal(await stack.chain.client.getCode({ address: counterfactual }), undefined, "checking it deployed nothing");
    });
  });
});
