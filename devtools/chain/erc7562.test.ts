import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Abi, type Address, type Hex, concat, encodeAbiParameters, encodeFunctionData, getAddress, keccak256, maxUint160, pad, parseEther, toHex } from "viem";
import { type UserOperation, entryPoint08Address, toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { ENTRY_POINT_V07 } from "../../server/chain/addresses";
import { loadProjectArtifact } from "../../server/chain/artifacts";
import { deployDeterministic } from "../../server/chain/canonical";
import { deployPaymaster } from "../../server/chain/deploy";
import type { OperatorWallet } from "../../server/chain/operator";
import { encodePaymasterData } from "../../server/sponsorship/signing/paymasterData";
import {
  type SimpleAccount,
  buildUserOperation,
  deployCounter,
  handleOps,
  newSimpleAccount,
  signAsAccount,
  sponsor,
} from "../userOperations";
import { type CheckValidationRulesReturnType, checkValidationRules } from "./erc7562";
import { DEV_KEYS, type LocalChain, localClients, startLocalChain } from "./localChain";

const signer = privateKeyToAccount(DEV_KEYS.signer);
const entryPoint = { address: ENTRY_POINT_V07, version: "0.7" } as const;

describe("ERC-7562 validation rules of our paymasters (traced on anvil)", () => {
  let chain: LocalChain;
  let chainId: number;
  let bundler: OperatorWallet;
  let counter: { address: Address; abi: Abi };
  let unstakedPaymaster: Address;
  let timeWindowPaymaster: Address;

  before(async () => {
    chain = await startLocalChain();
    chainId = chain.anvil.chainId;
    bundler = localClients(chain.anvil.rpcUrl, chainId, DEV_KEYS.bundler).wallet;
    counter = await deployCounter(chain.client, chain.owner);

    // the same contract and signer, deposited but never staked
    const unstaked = await deployPaymaster(chain.client, chain.owner, {
      salt: keccak256(toHex("erc7562 unstaked")),
      signers: [signer.address],
      minDeposit: parseEther("1"),
      minStake: 0n,
    });
    unstakedPaymaster = unstaked.paymaster;

    const { abi, bytecode } = loadProjectArtifact("test/TimeWindowPaymaster.sol", "TimeWindowPaymaster");
    const block = await chain.client.getBlock();
    const hash = await chain.owner.deployContract({ abi, bytecode, args: [ENTRY_POINT_V07, block.timestamp + 86_400n, block.number + 1_000n] });
    timeWindowPaymaster = getAddress((await chain.client.waitForTransactionReceipt({ hash })).contractAddress!);
    for (const [functionName, args, value] of [
      ["deposit", [], parseEther("1")],
      ["addStake", [86_400], parseEther("1")],
    ] as const) {
      const tx = await chain.owner.writeContract({ address: timeWindowPaymaster, abi, functionName, args, value });
      assert.equal((await chain.client.waitForTransactionReceipt({ hash: tx })).status, "success");
    }
  });
  after(async () => {
    await chain?.stop();
  });

  const increment = () => ({ to: counter.address, data: encodeFunctionData({ abi: counter.abi, functionName: "increment" }) });

  /** The account's next increment(), paid by `paymaster`, signed by our signer and the account. */
  async function signedOp(account: SimpleAccount, paymaster: Address) {
    const op = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster });
    return signAsAccount(account, await sponsor(op, { signer, chainId }), chainId);
  }

  const check = (userOperation: Awaited<ReturnType<typeof signedOp>>) =>
    checkValidationRules({ client: chain.client, entryPoint, userOperation });

  /** Which entities the trace reached, and whether each is staked. */
  const traced = (result: CheckValidationRulesReturnType) => result.entities.map(({ entity, address, staked }) => ({ entity, address, staked }));
  const paymasterSignatureFailed = (result: CheckValidationRulesReturnType) => (result.validation.paymasterValidationData & maxUint160) === 1n;

  it("the staked FiatPaymaster keeps every rule for an operation that deploys the account (initCode)", async () => {
    const account = await newSimpleAccount(chain.client);
    const op = await signedOp(account, chain.paymaster);
    assert.ok(op.factory, "the operation deploys its account");

    const result = await check(op);

    assert.deepEqual(traced(result), [
      { entity: "factory", address: getAddress(op.factory), staked: false },
      { entity: "account", address: account.address, staked: false },
      { entity: "paymaster", address: chain.paymaster, staked: true },
    ]);
    assert.equal(paymasterSignatureFailed(result), false, "the paymaster's signature check passed: the real path was traced");
    assert.deepEqual(result.violations, []);
  });

  it("the staked FiatPaymaster keeps every rule for an operation of a deployed account", async () => {
    const account = await newSimpleAccount(chain.client);
    await handleOps(chain.client, bundler, [await signedOp(account, chain.paymaster)]);
    const op = await signedOp(account, chain.paymaster);
    assert.equal(op.factory, undefined, "the account is deployed");

    const result = await check(op);

    assert.deepEqual(traced(result), [
      { entity: "account", address: account.address, staked: false },
      { entity: "paymaster", address: chain.paymaster, staked: true },
    ]);
    assert.equal(paymasterSignatureFailed(result), false);
    assert.deepEqual(result.violations, []);
  });

  it("the same FiatPaymaster unstaked breaks STO-031: it reads its signer set from its own storage", async () => {
    const result = await check(await signedOp(await newSimpleAccount(chain.client), unstakedPaymaster));

    assert.deepEqual(traced(result).at(-1), { entity: "paymaster", address: unstakedPaymaster, staked: false });
    assert.equal(paymasterSignatureFailed(result), false);
    assert.deepEqual(
      result.violations.map(({ rule, entity, address }) => ({ rule, entity, address })),
      [{ rule: "STO-031", entity: "paymaster", address: unstakedPaymaster }],
    );
    assert.match(result.violations[0]!.description, /unstaked paymaster accesses its own storage/);
  });

  it("a paymaster that reads TIMESTAMP and NUMBER in validation breaks OP-011, even staked", async () => {
    const result = await check(await signedOp(await newSimpleAccount(chain.client), timeWindowPaymaster));

    assert.deepEqual(traced(result).at(-1), { entity: "paymaster", address: timeWindowPaymaster, staked: true });
    assert.equal(result.validation.paymasterValidationData, 0n, "inside its window: the operation is sponsored");
    const found = result.violations.map(({ rule, entity, address, description }) => ({ rule, entity, address, opcode: description.split(" ").at(-1) }));
    assert.deepEqual(
      found.sort((a, b) => a.opcode!.localeCompare(b.opcode!)),
      [
        { rule: "OP-011", entity: "paymaster", address: timeWindowPaymaster, opcode: "NUMBER" },
        { rule: "OP-011", entity: "paymaster", address: timeWindowPaymaster, opcode: "TIMESTAMP" },
      ],
    );
  });
});

/** EntryPoint v0.8 as @account-abstraction/contracts@0.8.0 ships it (the canonical init code and salt). */
const ENTRY_POINT_V08_SALT: Hex = "0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9";
const v08Artifact = (name: string): { abi: Abi; bytecode: Hex } => require(`@account-abstraction/contracts-v08/artifacts/${name}.json`);

describe("ERC-7562 validation rules of FiatPaymasterV08 (EntryPoint v0.8, traced on anvil)", () => {
  let chain: LocalChain;
  let chainId: number;
  let factory: Address;
  const paymasters: { staked?: Address; unstaked?: Address } = {};
  const paymasterAbi = loadProjectArtifact("FiatPaymasterV08.sol", "FiatPaymasterV08").abi;

  before(async () => {
    chain = await startLocalChain();
    chainId = chain.anvil.chainId;
    const { client, owner } = chain;
    const send = async (request: Promise<Hex>) => assert.equal((await client.waitForTransactionReceipt({ hash: await request })).status, "success");
    const ep = await deployDeterministic(client, owner, { salt: ENTRY_POINT_V08_SALT, initCode: v08Artifact("EntryPoint").bytecode, label: "EntryPoint v0.8" });
    assert.equal(ep.address, entryPoint08Address);
    const factoryInitCode = concat([v08Artifact("SimpleAccountFactory").bytecode, encodeAbiParameters([{ type: "address" }], [entryPoint08Address])]);
    factory = (await deployDeterministic(client, owner, { salt: pad("0x0"), initCode: factoryInitCode, label: "SimpleAccountFactory v0.8" })).address;
    const { bytecode } = loadProjectArtifact("FiatPaymasterV08.sol", "FiatPaymasterV08");
    for (const kind of ["staked", "unstaked"] as const) {
      const hash = await owner.deployContract({ abi: paymasterAbi, bytecode, args: [entryPoint08Address, owner.account.address] });
      const address = getAddress((await client.waitForTransactionReceipt({ hash })).contractAddress!);
      await send(owner.writeContract({ address, abi: paymasterAbi, functionName: "addSigner", args: [signer.address] }));
      await send(owner.writeContract({ address, abi: paymasterAbi, functionName: "deposit", value: parseEther("1") }));
      if (kind === "staked") await send(owner.writeContract({ address, abi: paymasterAbi, functionName: "addStake", args: [86_400], value: parseEther("1") }));
      paymasters[kind] = address;
    }
  });
  after(async () => {
    await chain?.stop();
  });

  /** A fresh v0.8 SimpleAccount's first operation (initCode), sponsored through the paymaster's own getHash. */
  async function signedOp(paymaster: Address): Promise<UserOperation<"0.8">> {
    const account = await toSimpleSmartAccount({
      client: chain.client,
      owner: privateKeyToAccount(generatePrivateKey()),
      entryPoint: { address: entryPoint08Address, version: "0.8" },
      factoryAddress: factory,
    });
    const block = await chain.client.getBlock();
    const op: UserOperation<"0.8"> = {
      sender: account.address,
      nonce: await account.getNonce(),
      ...(await account.getFactoryArgs()),
      callData: await account.encodeCalls([{ to: account.address, data: "0x", value: 0n }]),
      callGasLimit: 200_000n,
      verificationGasLimit: 500_000n,
      preVerificationGas: 60_000n,
      maxFeePerGas: (block.baseFeePerGas ?? 0n) * 2n + 1_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
      paymaster,
      paymasterVerificationGasLimit: 60_000n,
      paymasterPostOpGasLimit: 0n,
      paymasterData: "0x",
      signature: "0x",
    };
    const validUntil = Math.floor(Date.now() / 1000) + 600;
    const hash = (await chain.client.readContract({
      address: paymaster,
      abi: paymasterAbi,
      functionName: "getHash",
      args: [toPackedUserOperation(op), validUntil, 0],
    })) as Hex;
    const sponsored = { ...op, paymasterData: encodePaymasterData({ validUntil, validAfter: 0, signature: await signer.signMessage({ message: { raw: hash } }) }) };
    return { ...sponsored, signature: await account.signUserOperation({ ...sponsored, chainId }) };
  }

  const check = async (paymaster: Address) => {
    const result = await checkValidationRules({ client: chain.client, entryPoint: { address: entryPoint08Address, version: "0.8" }, userOperation: await signedOp(paymaster) });
    assert.equal(result.validation.accountValidationData, 0n, "the account's signature over the v0.8 (EIP-712) userOpHash passed");
    assert.equal(result.validation.paymasterValidationData & maxUint160, 0n, "the paymaster's signature passed");
    return result;
  };

  it("the staked FiatPaymasterV08 keeps every rule for an operation that deploys the account", async () => {
    const result = await check(paymasters.staked!);

    assert.deepEqual(
      result.entities.map(({ entity, staked }) => ({ entity, staked })),
      [
        { entity: "factory", staked: false },
        { entity: "account", staked: false },
        { entity: "paymaster", staked: true },
      ],
    );
    assert.deepEqual(result.violations, []);
  });

  it("FiatPaymasterV08 unstaked breaks STO-031", async () => {
    const result = await check(paymasters.unstaked!);

    assert.deepEqual(
      result.violations.map(({ rule, entity, address }) => ({ rule, entity, address })),
      [{ rule: "STO-031", entity: "paymaster", address: paymasters.unstaked }],
    );
  });
});
