/**
 * EntryPoint v0.8 and v0.9 served beside v0.7 on one chain, end to end: viem's Simple7702 account (an EOA that
 * delegates, its first operation with the 0x7702 marker and an `eip7702Auth` authorization) and SimpleAccount,
 * sponsored through our ERC-7677 /rpc (v0.9 with its separate paymasterSignature), bundled by alto and settled;
 * a hold per (chain, EntryPoint, sender, nonce); what the admin API, /v1/config and the refusals say — on PGlite
 * and, when DATABASE_URL is set, PostgreSQL.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Abi, type Address, type Hex, type LocalAccount, encodeFunctionData, getAddress, http, size } from "viem";
import { type SmartAccount, createBundlerClient, createPaymasterClient, formatUserOperationRequest, toSimple7702SmartAccount } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { createApiKey, rpcErrorOf } from "../../devtools/testing/sponsorClients";
import { ADMIN_TOKEN, type SponsorStack, TEST_PRICE, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { deployCounter } from "../../devtools/userOperations";
import { ENTRY_POINT_V07, ENTRY_POINT_V08, ENTRY_POINT_V09, type EntryPointVersion, SIMPLE_7702_ACCOUNT_V08 } from "../chain/addresses";
import { checkLedger, getBalance } from "../ledger/ledger";
import { SPONSOR_ERROR_CODES } from "./errors";
import { chargeFen } from "./pricing";
import { preVerificationGasNeeded } from "./preVerificationGas";
import { settleChain } from "./settlement";
import { PAYMASTER_SIGNATURE_MAGIC, STUB_SIGNATURE } from "./signing/paymasterData";

const FUND_FEN = 1_000_000n;
const ENTRY_POINT = { "0.7": ENTRY_POINT_V07, "0.8": ENTRY_POINT_V08, "0.9": ENTRY_POINT_V09 } as const;

describeWithDatabases("EntryPoint v0.8 (EIP-7702) and v0.9 (parallel signing) beside v0.7, through alto", (db) => {
  let stack: SponsorStack;
  let counter: { address: Address; abi: Abi };
  let key: string;
  before(async () => {
    stack = await startSponsorStack({ db: db(), alto: true, entryPointVersions: ["0.7", "0.8", "0.9"], env: { SETTLE_INTERVAL_MS: "600000" } });
    counter = (await deployCounter(stack.chain.client, stack.chain.owner)) as { address: Address; abi: Abi };
    key = await createApiKey(stack, { allowedTargets: [counter.address] });
  });
  after(async () => {
    await stack?.stop();
  });

  const increment = () => ({ to: counter.address, data: encodeFunctionData({ abi: counter.abi, functionName: "increment" }) });
  const count = (account: Address) =>
    stack.chain.client.readContract({ address: counter.address, abi: counter.abi, functionName: "counts", args: [account] }) as Promise<bigint>;
  const runtime = () => stack.app.chains.values().next().value!;

  /** viem's own bundler client, as a DApp builds it: alto bundles, our /rpc sponsors (ERC-7677). */
  const bundlerClient = (account: SmartAccount, apiKey = key) =>
    createBundlerClient({
      account,
      client: stack.chain.client,
      transport: http(stack.alto!.url),
      paymaster: createPaymasterClient({ transport: http(`${stack.url}/rpc?apikey=${apiKey}`) }),
      pollingInterval: 100,
    });

  /** Sends `calls` from `account`, waits for the receipt and settles; checks the charge against the chain's cost. */
  async function landAndSettle(account: SmartAccount, version: EntryPointVersion, calls = [increment()], eoa?: LocalAccount) {
    const client = bundlerClient(account);
    // an undelegated EOA signs its authorization first, as viem's EIP-7702 guide does; the paymaster sees it signed
    const delegate = (account as { authorization?: { address: Address } }).authorization?.address;
    const authorization =
      eoa && delegate && !(await account.isDeployed())
        ? await eoa.signAuthorization!({ chainId: stack.chain.anvil.chainId, address: delegate, nonce: await stack.chain.client.getTransactionCount({ address: eoa.address }) })
        : undefined;
    const hash = await client.sendUserOperation({ calls, ...(authorization ? { authorization } : {}) });
    const receipt = await client.waitForUserOperationReceipt({ hash, timeout: 30_000 });
    assert.equal(receipt.success, true);
    assert.equal(getAddress(receipt.entryPoint), ENTRY_POINT[version]);
    assert.equal(getAddress(receipt.paymaster!), stack.chain.paymasters[version]);
    const before = await getBalance(db(), account.address);
    const result = await settleChain(db(), runtime());
    assert.ok(result.settled >= 1, `settled ${result.settled}`);
    const after = await getBalance(db(), account.address);
    const charged = chargeFen(receipt.actualGasCost, TEST_PRICE);
    assert.equal(before.availableFen + before.heldFen - (after.availableFen + after.heldFen), charged, "charged ceil(actualGasCost × price)");
    assert.equal(after.heldFen, 0n, "the rest of the hold released");
    const { rows } = await db().query<{ entry_point: string }>("SELECT entry_point FROM settlements WHERE user_op_hash = $1", [hash.toLowerCase()]);
    assert.deepEqual(rows, [{ entry_point: ENTRY_POINT[version].toLowerCase() }], "the settlement records its EntryPoint");
    return receipt;
  }

  it("v0.8: an EIP-7702 EOA's first operation (marker + eip7702Auth) and a later one land and settle; the EOA holds no ETH", async () => {
    const eoa = privateKeyToAccount(generatePrivateKey());
    const account = await toSimple7702SmartAccount({ client: stack.chain.client, owner: eoa });
    await stack.fund(account.address, FUND_FEN);
    await landAndSettle(account, "0.8", [increment()], eoa);
    assert.equal(await stack.chain.client.getCode({ address: eoa.address }), `0xef0100${SIMPLE_7702_ACCOUNT_V08.slice(2).toLowerCase()}`);
    await landAndSettle(account, "0.8", [increment()], eoa);
    assert.equal(await count(eoa.address), 2n);
    assert.equal(await stack.chain.client.getBalance({ address: eoa.address }), 0n);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("v0.8: a SimpleAccount's operation lands and settles", async () => {
    const account = await toSimpleSmartAccount({ client: stack.chain.client, owner: privateKeyToAccount(generatePrivateKey()), entryPoint: { address: ENTRY_POINT_V08, version: "0.8" } });
    await stack.fund(account.address, FUND_FEN);
    await landAndSettle(account, "0.8", [increment(), increment()]);
    assert.equal(await count(account.address), 2n);
  });

  it("v0.9: a Simple7702 EOA's operations land with the paymaster's signature in paymasterSignature, and settle", async () => {
    const eoa = privateKeyToAccount(generatePrivateKey());
    const account = await toSimple7702SmartAccount({ client: stack.chain.client, owner: eoa, entryPoint: "0.9" });
    await stack.fund(account.address, FUND_FEN);
    await landAndSettle(account, "0.9", [increment()], eoa);
    await landAndSettle(account, "0.9", [increment()], eoa);
    assert.equal(await count(account.address), 2n);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  /** A JSON-RPC call to our /rpc. */
  async function rpc(method: string, params: unknown[], apiKey = key) {
    const response = await fetch(`${stack.url}/rpc?apikey=${apiKey}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    return (await response.json()) as { result?: Record<string, Hex>; error?: { code: number; message: string; data?: Record<string, unknown> } };
  }

  const hex = (v: bigint) => `0x${v.toString(16)}`;
  async function rawOp(sender: Address, extra: Record<string, unknown> = {}) {
    const block = await stack.chain.client.getBlock();
    return {
      sender,
      nonce: "0x0",
      callData: encodeFunctionData({
        abi: [{ type: "function", name: "execute", inputs: [{ type: "address" }, { type: "uint256" }, { type: "bytes" }], outputs: [], stateMutability: "nonpayable" }],
        functionName: "execute",
        args: [counter.address, 0n, increment().data],
      }),
      callGasLimit: hex(100_000n),
      verificationGasLimit: hex(200_000n),
      preVerificationGas: hex(60_000n),
      maxFeePerGas: hex((block.baseFeePerGas ?? 0n) + 1_000_000_000n),
      maxPriorityFeePerGas: hex(1_000_000_000n),
      signature: "0x",
      ...extra,
    };
  }

  it("v0.9 stub and final: 12-byte paymasterData and a 65-byte paymasterSignature, the stub of the same length with no zero byte", async () => {
    const sender = privateKeyToAccount(generatePrivateKey()).address;
    await stack.fund(sender, FUND_FEN);
    const op = await rawOp(sender);
    const chainId = hex(BigInt(stack.chain.anvil.chainId));
    const stub = await rpc("pm_getPaymasterStubData", [op, ENTRY_POINT_V09, chainId, {}]);
    assert.equal(stub.error, undefined, JSON.stringify(stub.error));
    assert.equal(stub.result!.paymaster, stack.chain.paymasters["0.9"]);
    assert.equal(size(stub.result!.paymasterData!), 12);
    assert.equal(stub.result!.paymasterSignature, STUB_SIGNATURE);
    const final = await rpc("pm_getPaymasterData", [{ ...op, paymasterVerificationGasLimit: stub.result!.paymasterVerificationGasLimit }, ENTRY_POINT_V09, chainId, {}]);
    assert.equal(final.error, undefined, JSON.stringify(final.error));
    assert.equal(size(final.result!.paymasterData!), 12);
    assert.equal(size(final.result!.paymasterSignature!), 65);
    assert.ok(!final.result!.paymasterSignature!.endsWith(PAYMASTER_SIGNATURE_MAGIC.slice(2)), "the suffix is the bundler's to add, not part of the field");
    // v0.8 keeps v0.7's layout: the signature inside paymasterData
    const v08 = await rpc("pm_getPaymasterStubData", [op, ENTRY_POINT_V08, chainId, {}]);
    assert.equal(size(v08.result!.paymasterData!), 77);
    assert.equal(v08.result!.paymasterSignature, undefined);
  });

  it("one sender and nonce on two EntryPoints take two holds, each its own worst case: both operations could land", async () => {
    const sender = privateKeyToAccount(generatePrivateKey()).address;
    await stack.fund(sender, FUND_FEN);
    const op = await rawOp(sender);
    const chainId = hex(BigInt(stack.chain.anvil.chainId));
    const holds: string[] = [];
    for (const entryPoint of [ENTRY_POINT_V08, ENTRY_POINT_V09]) {
      const response = await fetch(`${stack.url}/v1/sponsorships`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": key },
        body: JSON.stringify({ userOp: op, entryPoint, chainId }),
      });
      assert.equal(response.status, 201, await response.clone().text());
      holds.push(((await response.json()) as { holdId: string }).holdId);
    }
    assert.notEqual(holds[0], holds[1], "a hold per EntryPoint");
    const { rows } = await db().query<{ entry_point: string; amount_fen: bigint }>("SELECT entry_point, amount_fen FROM holds WHERE account = $1 AND status = 'open' ORDER BY entry_point", [sender.toLowerCase()]);
    assert.deepEqual(rows.map((r) => r.entry_point), [ENTRY_POINT_V08.toLowerCase(), ENTRY_POINT_V09.toLowerCase()]);
    const balance = await getBalance(db(), sender);
    assert.equal(balance.heldFen, rows[0]!.amount_fen + rows[1]!.amount_fen, "the account holds both worst cases");
  });

  it("refusals name the problem: an unknown EntryPoint lists the three served, an eip7702Auth for another chain or without the marker, the marker on v0.7", async () => {
    const chainId = hex(BigInt(stack.chain.anvil.chainId));
    const sender = privateKeyToAccount(generatePrivateKey());
    const op = await rawOp(sender.address);
    const unknown = await rpc("pm_getPaymasterStubData", [op, "0x1111111111111111111111111111111111111111", chainId, {}]);
    assert.equal(unknown.error?.code, SPONSOR_ERROR_CODES.unsupported_entry_point);
    for (const [version, address] of Object.entries(ENTRY_POINT)) assert.ok(unknown.error!.message.includes(`${address} (v${version})`), unknown.error!.message);

    // viem sends the authorization with a placeholder signature (the wallet signs it last): the delegate it names is
    // bound into the signed hash; its chain must be this one (or 0, any)
    const eip7702Auth = { address: SIMPLE_7702_ACCOUNT_V08, chainId: "0x1", nonce: "0x0", r: `0x${"ff".repeat(32)}`, s: `0x${"7a".repeat(32)}`, yParity: "0x1" };
    const foreign = await rpc("pm_getPaymasterStubData", [{ ...op, factory: "0x7702", factoryData: "0x", eip7702Auth }, ENTRY_POINT_V08, chainId, {}]);
    assert.equal(foreign.error?.code, -32602, JSON.stringify(foreign.error));
    assert.match(foreign.error!.message, new RegExp(`userOp.eip7702Auth is for chain 1, not ${stack.chain.anvil.chainId}`));
    const stray = await rpc("pm_getPaymasterStubData", [{ ...op, eip7702Auth: { ...eip7702Auth, chainId } }, ENTRY_POINT_V08, chainId, {}]);
    assert.match(stray.error!.message, /eip7702Auth is set but userOp\.factory is not the 0x7702 marker/);

    const undelegated = await rpc("pm_getPaymasterStubData", [{ ...op, factory: "0x7702", factoryData: "0x" }, ENTRY_POINT_V08, chainId, {}]);
    assert.match(undelegated.error!.message, /has not delegated and userOp\.eip7702Auth is missing/);

    const onV07 = await rpc("pm_getPaymasterStubData", [{ ...op, factory: "0x7702", factoryData: "0x" }, ENTRY_POINT_V07, chainId, {}]);
    assert.match(onV07.error!.message, /EntryPoint v0\.7 does not know/);

    const error = await bundlerClient(await toSimple7702SmartAccount({ client: stack.chain.client, owner: sender }), key)
      .sendUserOperation({ calls: [{ to: stack.chain.paymaster, data: "0x" }] })
      .then(
        () => assert.fail("sponsored a call outside the allowlist"),
        (e: unknown) => rpcErrorOf(e),
      );
    assert.equal(error.code, SPONSOR_ERROR_CODES.policy_rejected, error.message);
  });

  it("v0.9 parallel signing with proof of control: the account signs over the stub's paymasterData first, the server checks that signature and keeps the window, the operation lands", async () => {
    const proofKey = await createApiKey(stack, { allowedTargets: [counter.address], senderProof: { account: true, maxValiditySeconds: 600 } }, "proof of control");
    const eoa = privateKeyToAccount(generatePrivateKey());
    const account = await toSimple7702SmartAccount({ client: stack.chain.client, owner: eoa, entryPoint: "0.9" });
    await stack.fund(account.address, FUND_FEN);
    const chainId = stack.chain.anvil.chainId;
    const authorization = await eoa.signAuthorization!({ chainId, address: account.authorization.address, nonce: 0 });
    const block = await stack.chain.client.getBlock();
    const base = {
      sender: account.address,
      nonce: await account.getNonce(),
      factory: "0x7702" as Hex,
      factoryData: "0x" as Hex,
      callData: await account.encodeCalls([increment()]),
      callGasLimit: 100_000n,
      verificationGasLimit: 150_000n,
      preVerificationGas: 0n,
      maxFeePerGas: (block.baseFeePerGas ?? 0n) + 1_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
      authorization,
      signature: "0x" as Hex,
    };
    const pvg = preVerificationGasNeeded({ ...base, eip7702Auth: authorization }, { paymaster: stack.chain.paymasters["0.9"], version: "0.9" });
    const op = { ...base, preVerificationGas: (pvg * 12n) / 10n };
    const hexChain = hex(BigInt(chainId));
    const stub = await rpc("pm_getPaymasterStubData", [formatUserOperationRequest(op), ENTRY_POINT_V09, hexChain, {}], proofKey);
    assert.equal(stub.error, undefined, "the stub leaves the proof to the final call");
    const withStub = {
      ...op,
      paymaster: stub.result!.paymaster as Address,
      paymasterVerificationGasLimit: BigInt(stub.result!.paymasterVerificationGasLimit!),
      paymasterPostOpGasLimit: BigInt(stub.result!.paymasterPostOpGasLimit!),
      paymasterData: stub.result!.paymasterData!,
      paymasterSignature: stub.result!.paymasterSignature!,
    };
    // the account signs before the paymaster has: v0.9's userOpHash covers paymasterData, not paymasterSignature
    const signed = { ...withStub, signature: await account.signUserOperation({ ...withStub, chainId }) };

    const missing = await rpc("pm_getPaymasterData", [formatUserOperationRequest(withStub), ENTRY_POINT_V09, hexChain, {}], proofKey);
    assert.equal(missing.error?.data?.rule, "sender_proof_missing", JSON.stringify(missing.error));
    const stranger = await toSimple7702SmartAccount({ client: stack.chain.client, owner: privateKeyToAccount(generatePrivateKey()), entryPoint: "0.9" });
    const forged = { ...withStub, signature: await stranger.signUserOperation({ ...withStub, sender: account.address, chainId } as never) };
    const rejected = await rpc("pm_getPaymasterData", [formatUserOperationRequest(forged), ENTRY_POINT_V09, hexChain, {}], proofKey);
    assert.equal(rejected.error?.data?.rule, "sender_proof_rejected", JSON.stringify(rejected.error));

    const final = await rpc("pm_getPaymasterData", [formatUserOperationRequest(signed), ENTRY_POINT_V09, hexChain, {}], proofKey);
    assert.equal(final.error, undefined, JSON.stringify(final.error));
    assert.equal(final.result!.paymasterData, stub.result!.paymasterData, "the stub's window is kept: the account's signature stays valid");
    const bundler = createBundlerClient({ client: stack.chain.client, transport: http(stack.alto!.url), pollingInterval: 100 });
    const hash = (await bundler.request({
      method: "eth_sendUserOperation",
      params: [formatUserOperationRequest({ ...signed, paymasterSignature: final.result!.paymasterSignature! }), ENTRY_POINT_V09],
    })) as Hex;
    const receipt = await bundler.waitForUserOperationReceipt({ hash, timeout: 30_000 });
    assert.equal(receipt.success, true);
    assert.equal(await count(account.address), 1n);
    await settleChain(db(), runtime());
    assert.equal((await getBalance(db(), account.address)).heldFen, 0n);
  });

  it("the admin API shows each (chain, EntryPoint) with its paymaster and deposit; /v1/config lists the EntryPoints", async () => {
    const response = await fetch(`${stack.url}/admin/chains`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(response.status, 200);
    const { chains } = (await response.json()) as { chains: { entryPointVersion: string; entryPoint: string; paymaster: string; healthy: boolean; deposit: { depositWei: string } }[] };
    assert.deepEqual(
      chains.map((c) => [c.entryPointVersion, c.entryPoint, c.paymaster, c.healthy]),
      (["0.7", "0.8", "0.9"] as const).map((v) => [v, ENTRY_POINT[v], stack.chain.paymasters[v], true]),
    );
    for (const c of chains) assert.ok(BigInt(c.deposit.depositWei) > 0n);
    const config = (await (await fetch(`${stack.url}/v1/config`)).json()) as { chains: { entryPoints: unknown[] }[] };
    assert.deepEqual(
      config.chains[0]!.entryPoints,
      (["0.7", "0.8", "0.9"] as const).map((version) => ({ version, entryPoint: ENTRY_POINT[version], paymaster: stack.chain.paymasters[version] })),
    );
  });
  // last: the reverted chain leaves alto's executor nonce behind
  it("a reorg that drops a v0.8 operation's block undoes its settlement (recorded with its EntryPoint) and holds its worst case again", async () => {
    const account = await toSimpleSmartAccount({ client: stack.chain.client, owner: privateKeyToAccount(generatePrivateKey()), entryPoint: { address: ENTRY_POINT_V08, version: "0.8" } });
    await stack.fund(account.address, FUND_FEN);
    const rpcCall = (method: string, params: unknown[] = []) => stack.chain.client.request({ method, params } as never) as Promise<unknown>;
    const snapshot = await rpcCall("evm_snapshot");
    const receipt = await landAndSettle(account, "0.8");
    const settled = await getBalance(db(), account.address);
    await rpcCall("evm_revert", [snapshot]);
    await rpcCall("anvil_mine", ["0x3"]);
    const pass = await settleChain(db(), runtime());
    assert.equal(pass.reorged, 1);
    const { rows } = await db().query<{ status: string; entry_point: string }>("SELECT status, entry_point FROM settlements WHERE user_op_hash = $1", [receipt.userOpHash.toLowerCase()]);
    assert.deepEqual(rows, [{ status: "reorged", entry_point: ENTRY_POINT_V08.toLowerCase() }]);
    const reopened = await getBalance(db(), account.address);
    assert.ok(reopened.heldFen > 0n, "the hold is open again");
    assert.equal(reopened.availableFen + reopened.heldFen, FUND_FEN, "the charge is undone");
    assert.ok(settled.availableFen < FUND_FEN);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });
});
