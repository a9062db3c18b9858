/**
 * Our paymasters held to the ERC-7562 validation rules on anvil, through checkValidationRules, for every
 * EntryPoint version startLocalChain installs: FiatPaymaster (v0.7), FiatPaymasterV08 (v0.8), FiatPaymasterV09
 * (v0.9), with SimpleAccounts and EIP-7702 EOAs delegating to Simple7702Account. Each compliant case also checks
 * that the trace reached every entity and that both signatures passed, so the real validation path was traced.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { toSimpleSmartAccount } from "permissionless/accounts";
import {
  type Abi,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type SignedAuthorization,
  concat,
  createPublicClient,
  encodeFunctionData,
  getAddress,
  http,
  keccak256,
  maxUint160,
  numberToHex,
  parseAbi,
  parseEther,
  slice,
  toFunctionSelector,
  toHex,
} from "viem";
import {
  type SmartAccount,
  type UserOperation as ViemUserOperation,
  getUserOperationHash,
  toPackedUserOperation,
  toSimple7702SmartAccount,
} from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  ENTRY_POINT_V07,
  ENTRY_POINT_V09,
  SIMPLE_7702_ACCOUNT_V08,
  SIMPLE_7702_ACCOUNT_V09,
  SIMPLE_ACCOUNT_FACTORY_V08,
  SIMPLE_ACCOUNT_FACTORY_V09,
} from "../../server/chain/addresses";
import { loadProjectArtifact } from "../../server/chain/artifacts";
import { deployPaymaster } from "../../server/chain/deploy";
import type { OperatorWallet } from "../../server/chain/operator";
import {
  STUB_SIGNATURE,
  encodePaymasterData,
  encodePaymasterDataV09,
  getPaymasterHash,
  getPaymasterHashV09,
  isEip7702Marker,
} from "../../server/sponsorship/signing/paymasterData";
import {
  ENTRY_POINTS,
  type SimpleAccount,
  buildUserOperation,
  deployCounter,
  handleOps,
  newSimpleAccount,
  signAsAccount,
  sponsor,
  submitOperations,
} from "../userOperations";
import { type CheckValidationRulesReturnType, InvalidAuthorizationError, ValidationSimulationError, checkValidationRules } from "./erc7562";
import { DEV_KEYS, type LocalChain, localClients, startLocalChain } from "./localChain";

const signer = privateKeyToAccount(DEV_KEYS.signer);

type Version = "0.8" | "0.9";
/** v0.9's unpacked form is v0.8's with paymasterSignature (and viem's `authorization`): both versions' operations fit it. */
type UserOperation = ViemUserOperation<"0.9">;
/** A smart account under test, and for an EIP-7702 one the EOA that signs its authorization. */
type Account = { smart: SmartAccount; eoa?: LocalAccount; version: Version };

const VALIDATE_USER_OP = "validateUserOp((address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes),bytes32,uint256)";
const VALIDATE_PAYMASTER_USER_OP = "validatePaymasterUserOp((address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes),bytes32,uint256)";
const DELEGATES = { "0.8": SIMPLE_7702_ACCOUNT_V08, "0.9": SIMPLE_7702_ACCOUNT_V09 } as const;
const SIMPLE_ACCOUNT_FACTORIES = { "0.8": SIMPLE_ACCOUNT_FACTORY_V08, "0.9": SIMPLE_ACCOUNT_FACTORY_V09 } as const;
const entryPointOf = (version: "0.7" | Version) => ({ address: ENTRY_POINTS[version].address, version });

/** Which entities the trace reached, whether each is staked, and an EIP-7702 account's delegate. */
const traced = (result: CheckValidationRulesReturnType) =>
  result.entities.map(({ entity, address, staked, eip7702Delegate }) => ({ entity, address, staked, ...(eip7702Delegate ? { eip7702Delegate } : {}) }));
const rulesBroken = (result: CheckValidationRulesReturnType) => result.violations.map(({ rule, entity, address }) => ({ rule, entity, address }));
const paymasterSignatureFailed = (result: CheckValidationRulesReturnType) => (result.validation.paymasterValidationData & maxUint160) === 1n;

describe("ERC-7562 validation rules of our paymasters (traced on anvil)", () => {
  let chain: LocalChain;
  let chainId: number;
  let bundler: OperatorWallet;
  let counter: { address: Address; abi: Abi };
  /** The same contract and signer as each version's paymaster, deposited but never staked. */
  const unstaked = {} as Record<"0.7" | Version, Address>;
  let timeWindowPaymaster: Address;

  before(async () => {
    chain = await startLocalChain();
    chainId = chain.anvil.chainId;
    bundler = localClients(chain.anvil.rpcUrl, chainId, DEV_KEYS.bundler).wallet;
    counter = await deployCounter(chain.client, chain.owner);
    for (const entryPointVersion of ["0.7", "0.8", "0.9"] as const) {
      const deployment = await deployPaymaster(chain.client, chain.owner, {
        entryPointVersion,
        salt: keccak256(toHex("erc7562 unstaked")),
        signers: [signer.address],
        minDeposit: parseEther("1"),
        minStake: 0n,
      });
      unstaked[entryPointVersion] = deployment.paymaster;
    }

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

  describe("EntryPoint v0.7: FiatPaymaster", () => {
    /** The account's next increment(), paid by `paymaster`, signed by our signer and the account. */
    async function signedOp(account: SimpleAccount, paymaster: Address) {
      const op = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster });
      return signAsAccount(account, await sponsor(op, { signer, chainId }), chainId);
    }
    async function check(userOperation: Awaited<ReturnType<typeof signedOp>>) {
      const result = await checkValidationRules({ client: chain.client, entryPoint: entryPointOf("0.7"), userOperation });
      assert.equal(result.validation.accountValidationData, 0n, "the account's signature passed");
      return result;
    }

    it("the staked FiatPaymaster keeps every rule for an operation that deploys the account (initCode)", async () => {
      const account = await newSimpleAccount(chain.client);
      const op = await signedOp(account, chain.paymasters["0.7"]);
      assert.ok(op.factory, "the operation deploys its account");

      const result = await check(op);

      assert.deepEqual(traced(result), [
        { entity: "factory", address: getAddress(op.factory), staked: false },
        { entity: "account", address: account.address, staked: false },
        { entity: "paymaster", address: chain.paymasters["0.7"], staked: true },
      ]);
      assert.equal(paymasterSignatureFailed(result), false, "the paymaster's signature check passed: the real path was traced");
      assert.deepEqual(result.violations, []);
    });

    it("the staked FiatPaymaster keeps every rule for an operation of a deployed account", async () => {
      const account = await newSimpleAccount(chain.client);
      await handleOps(chain.client, bundler, [await signedOp(account, chain.paymasters["0.7"])]);
      const op = await signedOp(account, chain.paymasters["0.7"]);
      assert.equal(op.factory, undefined, "the account is deployed");

      const result = await check(op);

      assert.deepEqual(traced(result), [
        { entity: "account", address: account.address, staked: false },
        { entity: "paymaster", address: chain.paymasters["0.7"], staked: true },
      ]);
      assert.equal(paymasterSignatureFailed(result), false);
      assert.deepEqual(result.violations, []);
    });

    it("traces at the chain's head as it is now, not at a block number the client read before the account was deployed", async () => {
      // a client that keeps a block number it read for a minute: what viem does for its polling interval
      const slow = createPublicClient({ chain: chain.client.chain, transport: http(chain.anvil.rpcUrl), pollingInterval: 60_000 }) as PublicClient;
      const account = await newSimpleAccount(chain.client);
      await slow.getBlockNumber();
      await handleOps(chain.client, bundler, [await signedOp(account, chain.paymasters["0.7"])]);
      const op = await signedOp(account, chain.paymasters["0.7"]);
      assert.equal(op.factory, undefined, "the account is deployed");

      const result = await checkValidationRules({ client: slow, entryPoint: entryPointOf("0.7"), userOperation: op });

      assert.equal(result.validation.accountValidationData, 0n, "simulated where the account exists");
      assert.deepEqual(result.violations, []);
    });

    it("the same FiatPaymaster unstaked breaks STO-031: it reads its signer set from its own storage", async () => {
      const result = await check(await signedOp(await newSimpleAccount(chain.client), unstaked["0.7"]));

      assert.deepEqual(traced(result).at(-1), { entity: "paymaster", address: unstaked["0.7"], staked: false });
      assert.equal(paymasterSignatureFailed(result), false);
      assert.deepEqual(rulesBroken(result), [{ rule: "STO-031", entity: "paymaster", address: unstaked["0.7"] }]);
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

  // v0.8 and v0.9 operations, built, sponsored and signed as contracts/FiatPaymasterV08V09.test.ts does

  async function simpleAccount(version: Version): Promise<Account> {
    const smart = await toSimpleSmartAccount({
      client: chain.client,
      owner: privateKeyToAccount(generatePrivateKey()),
      // permissionless 0.4.1 knows no "0.9"; v0.9's SimpleAccount, nonce and typed userOpHash are v0.8's
      entryPoint: { address: ENTRY_POINTS[version].address, version: "0.8" },
      factoryAddress: SIMPLE_ACCOUNT_FACTORIES[version],
    });
    return { smart: smart as unknown as SmartAccount, version };
  }

  async function eip7702Account(version: Version): Promise<Account> {
    const eoa = privateKeyToAccount(generatePrivateKey());
    const smart = await toSimple7702SmartAccount({ client: chain.client, owner: eoa, entryPoint: version });
    return { smart: smart as unknown as SmartAccount, eoa, version };
  }

  /** The EIP-7702 authorization of a not yet delegated EOA (for its current nonce), or nothing. */
  async function authorizationFor(account: Account): Promise<SignedAuthorization | undefined> {
    if (!account.eoa || (await chain.client.getCode({ address: account.eoa.address }))) return undefined;
    const nonce = await chain.client.getTransactionCount({ address: account.eoa.address });
    return account.eoa.signAuthorization!({ chainId, address: DELEGATES[account.version], nonce });
  }

  /** The operation as the EntryPoint hashes it: a marker initCode carries the delegate it will have. */
  const forHash = (account: Account, op: UserOperation): UserOperation =>
    (isEip7702Marker(op.factory) ? { ...op, authorization: { address: DELEGATES[account.version], chainId, nonce: 0 } } : op) as UserOperation;

  const userOpHash = (account: Account, op: UserOperation): Hex =>
    getUserOperationHash({ chainId, entryPointAddress: ENTRY_POINTS[account.version].address, entryPointVersion: account.version, userOperation: forHash(account, op) });

  /**
   * The account's next increment(), paid by `paymaster` (default: the version's staked one), sponsored by our signer
   * (v0.8: paymasterData over getHash, the 7702 delegate in place of a marker; v0.9: paymasterSignature over
   * getHash(userOpHash)) and signed by the account. A first 7702 operation carries its authorization.
   */
  async function signedOp(account: Account, paymaster: Address = chain.paymasters[account.version]): Promise<UserOperation> {
    const [callData, nonce, deployed, block, authorization] = await Promise.all([
      account.smart.encodeCalls([increment()]),
      account.smart.getNonce(),
      account.smart.isDeployed(),
      chain.client.getBlock(),
      authorizationFor(account),
    ]);
    const op = {
      sender: account.smart.address,
      nonce,
      ...(deployed ? {} : await account.smart.getFactoryArgs()),
      callData,
      callGasLimit: 200_000n,
      verificationGasLimit: 500_000n,
      preVerificationGas: 80_000n,
      maxFeePerGas: (block.baseFeePerGas ?? 0n) * 2n + 1_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
      paymaster,
      paymasterVerificationGasLimit: 60_000n,
      paymasterPostOpGasLimit: 0n,
      paymasterData: "0x",
      signature: "0x",
    } as UserOperation;
    const window = { validUntil: Math.floor(Date.now() / 1000) + 600, validAfter: 0 };
    let sponsored: UserOperation;
    if (account.version === "0.8") {
      const hash = getPaymasterHash({
        userOperation: { ...op, paymasterVerificationGasLimit: op.paymasterVerificationGasLimit!, paymasterPostOpGasLimit: op.paymasterPostOpGasLimit! },
        chainId,
        paymaster,
        entryPoint: ENTRY_POINTS["0.8"].address,
        ...window,
        eip7702Delegate: isEip7702Marker(op.factory) ? DELEGATES["0.8"] : undefined,
      });
      sponsored = { ...op, paymasterData: encodePaymasterData({ ...window, signature: await signer.signMessage({ message: { raw: hash } }) }) };
    } else {
      const withData = { ...op, paymasterData: encodePaymasterDataV09(window), paymasterSignature: STUB_SIGNATURE } as UserOperation;
      const hash = getPaymasterHashV09({ userOpHash: userOpHash(account, withData), paymaster });
      sponsored = { ...withData, paymasterSignature: await signer.signMessage({ message: { raw: hash } }) } as UserOperation;
    }
    const signature = await account.smart.signUserOperation({ ...forHash(account, sponsored), chainId } as never);
    return { ...sponsored, signature, ...(authorization ? { authorization } : {}) } as UserOperation;
  }

  /** handleOps through the real EntryPoint, with the operation's authorization in a type-4 transaction. */
  async function land(account: Account, op: UserOperation) {
    await submitOperations(chain.client, bundler, ENTRY_POINTS[account.version], [op], op.authorization ? [op.authorization] : undefined);
  }

  /** checkValidationRules for `op`, after checking both signatures passed (so the real validation path was traced). */
  async function check(account: Account, op: UserOperation): Promise<CheckValidationRulesReturnType> {
    const result = await checkValidationRules({ client: chain.client, entryPoint: entryPointOf(account.version), userOperation: op });
    assert.equal(result.validation.accountValidationData, 0n, "the account's signature over the userOpHash passed");
    assert.equal(paymasterSignatureFailed(result), false, "the paymaster's signature passed");
    return result;
  }

  for (const version of ["0.8", "0.9"] as const) {
    const contract = version === "0.8" ? "FiatPaymasterV08" : "FiatPaymasterV09";

    describe(`EntryPoint v${version}: ${contract}`, () => {
      it(`the staked ${contract} keeps every rule for a SimpleAccount's first operation (initCode) and its second`, async () => {
        const account = await simpleAccount(version);
        const first = await signedOp(account);
        assert.ok(first.factory, "the first operation deploys the account");

        const result = await check(account, first);

        assert.deepEqual(traced(result), [
          { entity: "factory", address: SIMPLE_ACCOUNT_FACTORIES[version], staked: false },
          { entity: "account", address: account.smart.address, staked: false },
          { entity: "paymaster", address: chain.paymasters[version], staked: true },
        ]);
        assert.deepEqual(result.violations, []);

        await land(account, first);
        const second = await signedOp(account);
        assert.equal(second.factory, undefined, "the account is deployed");
        const later = await check(account, second);
        assert.deepEqual(traced(later), [
          { entity: "account", address: account.smart.address, staked: false },
          { entity: "paymaster", address: chain.paymasters[version], staked: true },
        ]);
        assert.deepEqual(later.violations, []);
      });

      it(`${contract} unstaked breaks STO-031: it reads its signer set from its own storage`, async () => {
        const account = await simpleAccount(version);

        const result = await check(account, await signedOp(account, unstaked[version]));

        assert.deepEqual(traced(result).at(-1), { entity: "paymaster", address: unstaked[version], staked: false });
        assert.deepEqual(rulesBroken(result), [{ rule: "STO-031", entity: "paymaster", address: unstaked[version] }]);
      });

      it(`an EIP-7702 EOA's first operation (0x7702 marker, traced with its authorization's delegation) and a later one keep every rule`, async () => {
        const account = await eip7702Account(version);
        const eoa = account.eoa!.address;
        const first = await signedOp(account);
        assert.ok(isEip7702Marker(first.factory), "the first operation carries the 0x7702 marker");
        assert.ok(first.authorization, "and the EOA's authorization");
        assert.equal(await chain.client.getCode({ address: eoa }), undefined, "the EOA has no code on chain yet");
        // without the authorization's delegation the EntryPoint finds no account code to run
        await assert.rejects(checkValidationRules({ client: chain.client, entryPoint: entryPointOf(version), userOperation: { ...first, authorization: undefined } }), ValidationSimulationError);

        const result = await check(account, first);

        // the account phase ran the delegate's validateUserOp at the EOA's address, and its signature check passed
        assert.deepEqual(traced(result), [
          { entity: "account", address: eoa, staked: false, eip7702Delegate: DELEGATES[version] },
          { entity: "paymaster", address: chain.paymasters[version], staked: true },
        ]);
        assert.deepEqual(result.violations, []);

        await land(account, first);
        assert.equal(await chain.client.getCode({ address: eoa }), concat(["0xef0100", DELEGATES[version]]).toLowerCase(), "delegated for real (type-4)");
        const second = await signedOp(account);
        assert.equal(second.factory, undefined, "a delegated EOA sends no marker");
        assert.equal(second.authorization, undefined, "nor an authorization");
        const later = await check(account, second);
        assert.deepEqual(traced(later), traced(result));
        assert.deepEqual(later.violations, []);
      });
    });
  }

  describe("EntryPoint v0.9: 0.9.0-rc.1's EntryPointSimulations at the canonical address", () => {
    type CallFrame = { type: string; from: Address; to: Address; input: Hex; output?: Hex; gas: Hex; error?: string; calls?: CallFrame[] };
    const simulations = require("@account-abstraction/contracts-v09/artifacts/EntryPointSimulations.json") as { abi: Abi; deployedBytecode: Hex };
    const PHASES = new Set(["createSender(bytes)", VALIDATE_USER_OP, VALIDATE_PAYMASTER_USER_OP].map((signature) => toFunctionSelector(signature)));

    /** callTracer's frame of `data` sent to the v0.9 EntryPoint, with `code` overriding accounts' code. */
    async function callTrace(data: Hex, code: Record<Address, Hex>, blockNumber: bigint, from: Address = bundler.account.address): Promise<CallFrame> {
      const stateOverrides = Object.fromEntries(Object.entries(code).map(([address, value]) => [address, { code: value }]));
      return (await chain.client.request({
        method: "debug_traceCall",
        params: [{ from, to: ENTRY_POINT_V09, data, gas: numberToHex(5_000_000) }, numberToHex(blockNumber), { tracer: "callTracer", stateOverrides }],
      } as never)) as CallFrame;
    }

    /** The EntryPoint's calls that open a validation phase: whom, with what input and gas, and what came back. */
    const phaseCalls = (frame: CallFrame) =>
      (frame.calls ?? [])
        .filter((call) => PHASES.has(slice(call.input, 0, 4)))
        .map(({ to, input, gas, output, error }) => ({ to: getAddress(to), input, gas, output, error }));

    it("calls factory, account and paymaster with exactly the inputs the canonical EntryPoint's handleOps gives them", async () => {
      const [first, eip7702] = await Promise.all([simpleAccount("0.9"), eip7702Account("0.9")]);
      const senderCreator = await chain.client.readContract({ address: ENTRY_POINT_V09, abi: ENTRY_POINTS["0.9"].abi, functionName: "senderCreator" });
      const blockNumber = await chain.client.getBlockNumber({ cacheTime: 0 });
      for (const [account, op, expectedTargets] of [
        [first, await signedOp(first), [senderCreator, first.smart.address, chain.paymasters["0.9"]]],
        [eip7702, await signedOp(eip7702), [eip7702.smart.address, chain.paymasters["0.9"]]],
      ] as const) {
        const code: Record<Address, Hex> = op.authorization ? { [op.sender]: concat(["0xef0100", op.authorization.address]) } : {};
        const packed = toPackedUserOperation(op);
        const canonical = await callTrace(encodeFunctionData({ abi: ENTRY_POINTS["0.9"].abi, functionName: "handleOps", args: [[packed], bundler.account.address] }), code, blockNumber);
        const simulated = await callTrace(
          encodeFunctionData({ abi: simulations.abi, functionName: "simulateValidation", args: [packed] }),
          { ...code, [ENTRY_POINT_V09]: simulations.deployedBytecode },
          blockNumber,
        );
        assert.equal(canonical.error, undefined, `the canonical handleOps succeeds (${account.eoa ? "EIP-7702 EOA" : "SimpleAccount"})`);
        assert.equal(simulated.error, undefined, "simulateValidation returns");
        assert.deepEqual(phaseCalls(canonical).map((call) => call.to), expectedTargets, "the canonical SenderCreator, then account and paymaster");
        assert.deepEqual(phaseCalls(simulated), phaseCalls(canonical), "the same targets, inputs (userOpHash, prefund), gas and results");
      }
    });
  });

  describe("EntryPoint v0.9: an initCode for an account that exists", () => {
    it("is ignored by the EntryPoint, so its factory is no entity of the operation", async () => {
      const account = await simpleAccount("0.9");
      const factoryArgs = await account.smart.getFactoryArgs();
      await land(account, await signedOp(account));
      const op = await signedOp(account);
      assert.equal(op.factory, undefined);
      // the same operation with the initCode it no longer needs, signed again (the userOpHash covers initCode)
      const withInitCode = await signedOp({ ...account, smart: { ...account.smart, isDeployed: async () => false, getFactoryArgs: async () => factoryArgs } });

      const result = await check(account, withInitCode);

      assert.equal(withInitCode.factory && getAddress(withInitCode.factory), SIMPLE_ACCOUNT_FACTORY_V09);
      assert.deepEqual(traced(result), [
        { entity: "account", address: account.smart.address, staked: false },
        { entity: "paymaster", address: chain.paymasters["0.9"], staked: true },
      ]);
      assert.deepEqual(result.violations, []);
    });
  });

  describe("ERC-7562's EIP-7702 authorization rules", () => {
    it("a delegated EOA as the factory breaks AUTH-020 (an EIP-7702 account may only be a sender)", async () => {
      // an EOA delegating to SimpleAccountFactory v0.8 (by state override) deploys SimpleAccounts from its own address
      const factory = privateKeyToAccount(generatePrivateKey()).address;
      const stateOverride = [{ address: factory, code: concat(["0xef0100", SIMPLE_ACCOUNT_FACTORY_V08]) }];
      const owner = privateKeyToAccount(generatePrivateKey());
      const sender = await chain.client.readContract({
        address: factory,
        abi: parseAbi(["function getAddress(address owner, uint256 salt) view returns (address)"]),
        functionName: "getAddress",
        args: [owner.address, 0n],
        stateOverride,
      });
      const smart = await toSimpleSmartAccount({ client: chain.client, owner, entryPoint: { address: ENTRY_POINTS["0.8"].address, version: "0.8" }, factoryAddress: factory, address: sender });
      const account: Account = { smart: smart as unknown as SmartAccount, version: "0.8" };
      const op = await signedOp(account);
      assert.equal(op.factory && getAddress(op.factory), factory);

      const result = await checkValidationRules({ client: chain.client, entryPoint: entryPointOf("0.8"), userOperation: op, stateOverride });

      assert.equal(result.validation.accountValidationData, 0n, "the account it deployed validated the operation");
      assert.deepEqual(traced(result)[0], { entity: "factory", address: factory, staked: false, eip7702Delegate: SIMPLE_ACCOUNT_FACTORY_V08 });
      assert.deepEqual(rulesBroken(result), [{ rule: "AUTH-020", entity: "factory", address: factory }]);
    });

    it("an account whose validation runs through another delegated EOA breaks AUTH-030", async () => {
      // a deployed SimpleAccount's implementation turned (by state override) into an EOA delegating to a copy of it
      const account = await simpleAccount("0.8");
      await land(account, await signedOp(account));
      const implementation = await chain.client.readContract({
        address: SIMPLE_ACCOUNT_FACTORY_V08,
        abi: parseAbi(["function accountImplementation() view returns (address)"]),
        functionName: "accountImplementation",
      });
      const copy = privateKeyToAccount(generatePrivateKey()).address;
      const stateOverride = [
        { address: implementation, code: concat(["0xef0100", copy]) },
        { address: copy, code: (await chain.client.getCode({ address: implementation }))! },
      ];

      const result = await checkValidationRules({ client: chain.client, entryPoint: entryPointOf("0.8"), userOperation: await signedOp(account), stateOverride });

      assert.equal(result.validation.accountValidationData, 0n, "the proxy's DELEGATECALL ran the copy through the designator");
      assert.deepEqual(rulesBroken(result), [{ rule: "AUTH-030", entity: "account", address: account.smart.address }]);
      assert.match(result.violations[0]!.description, new RegExp(`${implementation}.*DELEGATECALL`));
    });

    it("refuses to trace with an authorization that would not delegate the sender: another signer, another nonce", async () => {
      const account = await eip7702Account("0.9");
      const op = await signedOp(account);
      const eoa = account.eoa!.address;
      const stranger = privateKeyToAccount(generatePrivateKey());
      for (const [authorization, reason] of [
        [await stranger.signAuthorization({ chainId, address: DELEGATES["0.9"], nonce: 0 }), /signed by 0x[0-9a-fA-F]{40}, not by the sender/],
        [await account.eoa!.signAuthorization!({ chainId, address: DELEGATES["0.9"], nonce: 1 }), /made for nonce 1, the sender's is 0/],
      ] as const) {
        await assert.rejects(
          checkValidationRules({ client: chain.client, entryPoint: entryPointOf("0.9"), userOperation: { ...op, authorization } }),
          (error: Error) => error instanceof InvalidAuthorizationError && reason.test(error.message),
        );
      }
      assert.equal(await chain.client.getCode({ address: eoa }), undefined);
    });
  });
});
