import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Abi, type Address, type Hex, encodeFunctionData, getAddress, hexToBytes, parseEther, toHex, keccak256, concat, slice } from "viem";
import { toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ENTRY_POINT_V07 } from "../server/chain/addresses";
import { fiatPaymasterArtifact } from "../server/chain/artifacts";
import { encodeStubPaymasterData, getPaymasterHash } from "../server/sponsorship/signing/paymasterData";
import { DEV_KEYS, type LocalChain, localClients, startLocalChain } from "../devtools/chain/localChain";
import type { OperatorWallet } from "../server/chain/operator";
import {
  type SimpleAccount,
  type UserOp,
  buildUserOperation,
  deployCounter,
  entryPointAbi,
  handleOps,
  handleOpsFailure,
  newSimpleAccount,
  paymasterAndData,
  signAsAccount,
  sponsor,
  userOperationEvents,
  withPaymasterGas,
} from "../devtools/userOperations";

const signer = privateKeyToAccount(DEV_KEYS.signer);
const abi: Abi = fiatPaymasterArtifact().abi;

describe("FiatPaymaster through the real EntryPoint v0.7", () => {
  let chain: LocalChain;
  let bundler: OperatorWallet;
  let stranger: OperatorWallet;
  let counter: { address: Address; abi: Abi };
  let chainId: number;

  before(async () => {
    chain = await startLocalChain();
    chainId = chain.anvil.chainId;
    bundler = localClients(chain.anvil.rpcUrl, chainId, DEV_KEYS.bundler).wallet;
    stranger = localClients(chain.anvil.rpcUrl, chainId, generatePrivateKey()).wallet;
    counter = await deployCounter(chain.client, chain.owner);
  });
  after(async () => {
    await chain?.stop();
  });

  const increment = () => ({ to: counter.address, data: encodeFunctionData({ abi: counter.abi, functionName: "increment" }) });
  const deposit = () => chain.client.readContract({ address: chain.paymaster, abi, functionName: "getDeposit" }) as Promise<bigint>;
  const count = (account: Address) =>
    chain.client.readContract({ address: counter.address, abi: counter.abi, functionName: "counts", args: [account] }) as Promise<bigint>;

  /** A fresh zero-ETH account's increment() operation, sponsored by `by` and signed by the account. */
  async function sponsoredOp(options: { by?: typeof signer; validUntil?: number; validAfter?: number } = {}) {
    const account = await newSimpleAccount(chain.client);
    const op = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster });
    const sponsored = await sponsor(op, { signer: options.by ?? signer, chainId, validUntil: options.validUntil, validAfter: options.validAfter });
    return { account, op: await signAsAccount(account, sponsored, chainId) };
  }

  async function sendOwner(functionName: string, args: readonly unknown[], value?: bigint) {
    const hash = await chain.owner.writeContract({ address: chain.paymaster, abi, functionName, args, value });
    assert.equal((await chain.client.waitForTransactionReceipt({ hash })).status, "success");
  }

  it("pays for a zero-ETH SimpleAccount's operation out of the paymaster's deposit", async () => {
    const { account, op } = await sponsoredOp();
    assert.equal(await chain.client.getBalance({ address: account.address }), 0n);
    const depositBefore = await deposit();

    const receipt = await handleOps(chain.client, bundler, [op]);

    const [event] = userOperationEvents(receipt);
    assert.ok(event, "a UserOperationEvent was emitted");
    assert.equal(event.success, true);
    assert.equal(getAddress(event.paymaster), chain.paymaster);
    assert.equal(getAddress(event.sender), account.address);
    assert.ok(event.actualGasCost > 0n);
    assert.equal(await deposit(), depositBefore - event.actualGasCost, "the deposit paid exactly the actual gas cost");
    assert.equal(await chain.client.getBalance({ address: account.address }), 0n, "the account still holds no ETH");
    assert.equal(await count(account.address), 1n, "the call executed");
  });

  it("computes the same hash off chain as getHash on chain", async () => {
    const account = await newSimpleAccount(chain.client);
    const ops: UserOp[] = [
      await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster }),
      {
        ...(await buildUserOperation(chain.client, account, { calls: [increment(), increment()], paymaster: chain.paymaster, nonce: 7n << 64n })),
        factory: undefined,
        factoryData: undefined,
        callGasLimit: 2n ** 128n - 1n,
        verificationGasLimit: 1n,
        preVerificationGas: 2n ** 200n,
        maxFeePerGas: 12345678901234567890n,
        maxPriorityFeePerGas: 3n,
        paymasterVerificationGasLimit: 2n ** 127n,
        paymasterPostOpGasLimit: 99n,
      },
    ];
    for (const op of ops) {
      for (const [validUntil, validAfter] of [[0, 0], [2 ** 48 - 1, 1], [1_900_000_000, 1_800_000_000]] as const) {
        const onChain = await chain.client.readContract({
          address: chain.paymaster,
          abi,
          functionName: "getHash",
          args: [toPackedUserOperation({ ...op, paymasterData: encodeStubPaymasterData({ validUntil, validAfter }) }), validUntil, validAfter],
        });
        const offChain = getPaymasterHash({
          userOperation: withPaymasterGas(op),
          chainId,
          paymaster: chain.paymaster,
          entryPoint: ENTRY_POINT_V07,
          validUntil,
          validAfter,
        });
        assert.equal(offChain, onChain);
      }
    }
  });

  describe("every field the signature binds", () => {
    /** Returns the changed operation and, when the sender changed, the account that now signs it. */
    type Mutation = [name: string, mutate: (op: UserOp) => Promise<{ op: UserOp; owner?: SimpleAccount }>];
    const field = (change: (op: UserOp) => Partial<UserOp>) => async (op: UserOp) => ({ op: { ...op, ...change(op) } as UserOp });
    const mutations: Mutation[] = [
      ["callData", field((op) => ({ callData: concat([op.callData, "0x00"]) }))],
      ["nonce", field((op) => ({ nonce: op.nonce + (1n << 64n) }))],
      ["callGasLimit", field((op) => ({ callGasLimit: op.callGasLimit + 1n }))],
      ["verificationGasLimit", field((op) => ({ verificationGasLimit: op.verificationGasLimit + 1n }))],
      ["preVerificationGas", field((op) => ({ preVerificationGas: op.preVerificationGas + 1n }))],
      ["maxFeePerGas", field((op) => ({ maxFeePerGas: op.maxFeePerGas + 1n }))],
      ["maxPriorityFeePerGas", field((op) => ({ maxPriorityFeePerGas: op.maxPriorityFeePerGas - 1n }))],
      ["paymasterVerificationGasLimit", field((op) => ({ paymasterVerificationGasLimit: op.paymasterVerificationGasLimit! + 1n }))],
      ["paymasterPostOpGasLimit", field((op) => ({ paymasterPostOpGasLimit: op.paymasterPostOpGasLimit! + 1n }))],
      ["validUntil", field((op) => ({ paymasterData: concat([toHex(BigInt(slice(op.paymasterData!, 0, 6)) + 1n, { size: 6 }), slice(op.paymasterData!, 6)]) }))],
      ["validAfter", field((op) => ({ paymasterData: concat([slice(op.paymasterData!, 0, 6), toHex(1, { size: 6 }), slice(op.paymasterData!, 12)]) }))],
      [
        "sender and initCode",
        async (op) => {
          // another owner's SimpleAccount: sender and initCode change together, as they must
          const owner = await newSimpleAccount(chain.client);
          return { op: { ...op, sender: owner.address, ...(await owner.getFactoryArgs()) }, owner };
        },
      ],
    ];

    for (const [name, mutate] of mutations) {
      it(`changing ${name} after signing fails paymaster validation with AA34`, async () => {
        const account = await newSimpleAccount(chain.client);
        const op = await sponsor(await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster }), { signer, chainId });
        const intact = await signAsAccount(account, op, chainId);
        assert.equal(await handleOpsFailure(chain.client, bundler, [intact]), null, "the unchanged operation is valid");

        const changed = await mutate(op);
        // the user re-signs the changed operation: only the paymaster's signature is stale
        const resigned = await signAsAccount(changed.owner ?? account, changed.op, chainId);
        assert.equal(await handleOpsFailure(chain.client, bundler, [resigned]), "AA34 signature error");
      });
    }

    it("a signature for another chain id fails with AA34", async () => {
      const account = await newSimpleAccount(chain.client);
      const op = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster });
      const signed = await signAsAccount(account, await sponsor(op, { signer, chainId: chainId + 1 }), chainId);
      assert.equal(await handleOpsFailure(chain.client, bundler, [signed]), "AA34 signature error");
    });

    it("a signature for another paymaster address fails with AA34", async () => {
      const account = await newSimpleAccount(chain.client);
      const op = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster });
      const elsewhere = getAddress(keccak256(toHex("another paymaster")).slice(0, 42));
      const signed = await signAsAccount(account, await sponsor(op, { signer, chainId, paymasterForHash: elsewhere }), chainId);
      assert.equal(await handleOpsFailure(chain.client, bundler, [signed]), "AA34 signature error");
    });
  });

  describe("validity window", () => {
    it("an expired sponsorship fails with AA32", async () => {
      const now = Number((await chain.client.getBlock()).timestamp);
      const { op } = await sponsoredOp({ validUntil: now - 1 });
      assert.equal(await handleOpsFailure(chain.client, bundler, [op]), "AA32 paymaster expired or not due");
    });

    it("a sponsorship not yet valid fails with AA32", async () => {
      const now = Number((await chain.client.getBlock()).timestamp);
      const { op } = await sponsoredOp({ validAfter: now + 3600, validUntil: now + 7200 });
      assert.equal(await handleOpsFailure(chain.client, bundler, [op]), "AA32 paymaster expired or not due");
    });
  });

  describe("signer set", () => {
    it("an added signer's signature works and a removed signer's fails", async () => {
      const rotated = privateKeyToAccount(generatePrivateKey());
      const before_ = await sponsoredOp({ by: rotated });
      assert.equal(await handleOpsFailure(chain.client, bundler, [before_.op]), "AA34 signature error", "not yet a signer");

      await sendOwner("addSigner", [rotated.address]);
      const added = await sponsoredOp({ by: rotated });
      const receipt = await handleOps(chain.client, bundler, [added.op]);
      assert.equal(userOperationEvents(receipt)[0]?.success, true);

      await sendOwner("removeSigner", [rotated.address]);
      const removed = await sponsoredOp({ by: rotated });
      assert.equal(await handleOpsFailure(chain.client, bundler, [removed.op]), "AA34 signature error");
      assert.deepEqual(await chain.client.readContract({ address: chain.paymaster, abi, functionName: "signers" }), [signer.address]);
    });

    it("non-owners cannot change signers, withdraw or touch the stake", async () => {
      const calls: [string, readonly unknown[], bigint?][] = [
        ["addSigner", [stranger.account.address]],
        ["removeSigner", [signer.address]],
        ["withdrawTo", [stranger.account.address, 1n]],
        ["addStake", [86_400], 0n],
        ["unlockStake", []],
        ["withdrawStake", [stranger.account.address]],
        ["transferOwnership", [stranger.account.address]],
        ["renounceOwnership", []],
      ];
      for (const [functionName, args, value] of calls) {
        await assert.rejects(
          chain.client.simulateContract({ account: stranger.account, address: chain.paymaster, abi, functionName, args, value }),
          (error: Error) => /OwnableUnauthorizedAccount/.test(error.message),
          `${functionName} by a stranger must revert with OwnableUnauthorizedAccount`,
        );
      }
    });

    it("the owner cannot renounce ownership, which would lock the deposit", async () => {
      await assert.rejects(
        chain.client.simulateContract({ account: chain.owner.account, address: chain.paymaster, abi, functionName: "renounceOwnership" }),
        /RenounceOwnershipDisabled/,
      );
    });

    it("the zero address and duplicates cannot be added, unknown signers cannot be removed", async () => {
      const attempt = (functionName: string, who: Address) =>
        chain.client.simulateContract({ account: chain.owner.account, address: chain.paymaster, abi, functionName, args: [who] });
      await assert.rejects(attempt("addSigner", "0x0000000000000000000000000000000000000000"), /InvalidSigner/);
      await assert.rejects(attempt("addSigner", signer.address), /SignerAlreadyAdded/);
      await assert.rejects(attempt("removeSigner", stranger.account.address), /SignerNotFound/);
    });
  });

  describe("malformed paymasterData", () => {
    async function validate(op: UserOp): Promise<bigint> {
      const [, validationData] = (await chain.client.readContract({
        account: ENTRY_POINT_V07,
        address: chain.paymaster,
        abi,
        functionName: "validatePaymasterUserOp",
        args: [{ ...toPackedUserOperation(op), paymasterAndData: paymasterAndData(op) }, keccak256("0x"), 0n],
      })) as [Hex, bigint];
      return validationData;
    }

    const validUntil = Math.floor(Date.now() / 1000) + 600;
    const realSignature = async (op: UserOp) => (await sponsor(op, { signer, chainId, validUntil })).paymasterData!;
    const highS = (data: Hex): Hex => {
      // s' = n - s with v flipped is the same signature's malleable twin: valid for ecrecover, refused by OZ
      const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
      const s = BigInt(slice(data, 44, 76));
      const v = hexToBytes(data)[76]!;
      return concat([slice(data, 0, 44), toHex(n - s, { size: 32 }), toHex(v === 27 ? 28 : 27, { size: 1 })]);
    };
    const cases: [string, (op: UserOp) => Promise<Hex>][] = [
      ["empty", async () => "0x"],
      ["too short for the timestamps", async () => "0x0102"],
      ["a 64-byte (compact) signature", async (op) => slice(await realSignature(op), 0, 76)],
      ["one byte too long", async (op) => concat([await realSignature(op), "0x01"])],
      ["a high-s signature", async (op) => highS(await realSignature(op))],
      ["garbage of the right length", async () => concat([toHex(validUntil, { size: 6 }), toHex(0, { size: 6 }), keccak256("0x01"), keccak256("0x02"), "0x1f"])],
      ["all zeros", async () => toHex(0, { size: 77 })],
      ["the stub", async () => encodeStubPaymasterData({ validUntil, validAfter: 0 })],
    ];

    for (const [name, make] of cases) {
      it(`${name}: validation returns a signature failure instead of reverting, handleOps reports AA34`, async () => {
        const account = await newSimpleAccount(chain.client);
        const op = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster });
        const bad = await signAsAccount(account, { ...op, paymasterData: await make(op) }, chainId);
        assert.equal((await validate(bad)) & 1n, 1n, "sigFailed bit set");
        assert.equal(await handleOpsFailure(chain.client, bundler, [bad]), "AA34 signature error");
      });
    }

    it("the intact signature validates (control for the cases above)", async () => {
      const account = await newSimpleAccount(chain.client);
      const op = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster });
      const good = await signAsAccount(account, { ...op, paymasterData: await realSignature(op) }, chainId);
      const validationData = await validate(good);
      assert.equal(validationData & 1n, 0n);
      assert.equal(validationData >> 160n & (2n ** 48n - 1n), BigInt(validUntil), "validUntil reaches the EntryPoint");
    });

    it("only the EntryPoint may call validatePaymasterUserOp", async () => {
      const { op } = await sponsoredOp();
      await assert.rejects(
        chain.client.readContract({
          account: stranger.account.address,
          address: chain.paymaster,
          abi,
          functionName: "validatePaymasterUserOp",
          args: [toPackedUserOperation(op), keccak256("0x"), 0n],
        }),
        /NotFromEntryPoint/,
      );
    });
  });

  describe("replay", () => {
    it("the same signed operation cannot execute twice (AA25) and its paymasterData cannot pay for another (AA34)", async () => {
      const { account, op: deploying } = await sponsoredOp();
      await handleOps(chain.client, bundler, [deploying]);
      const built = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster });
      const op = await signAsAccount(account, await sponsor(built, { signer, chainId }), chainId);
      await handleOps(chain.client, bundler, [op]);
      assert.equal(await handleOpsFailure(chain.client, bundler, [op]), "AA25 invalid account nonce");

      const next = await buildUserOperation(chain.client, account, { calls: [increment()], paymaster: chain.paymaster, nonce: op.nonce + 1n });
      const reused = await signAsAccount(account, { ...next, paymasterData: op.paymasterData }, chainId);
      assert.equal(await handleOpsFailure(chain.client, bundler, [reused]), "AA34 signature error");
      assert.equal(await count(account.address), 2n);
    });
  });

  describe("deposit and stake (runs last: it unstakes the paymaster)", () => {
    it("anyone can deposit and the owner can withdraw, with events", async () => {
      const depositBefore = await deposit();
      const hash = await bundler.writeContract({ address: chain.paymaster, abi, functionName: "deposit", value: parseEther("2") });
      await chain.client.waitForTransactionReceipt({ hash });
      assert.equal(await deposit(), depositBefore + parseEther("2"));

      const to = privateKeyToAccount(generatePrivateKey()).address;
      await sendOwner("withdrawTo", [to, parseEther("1.5")]);
      assert.equal(await chain.client.getBalance({ address: to }), parseEther("1.5"));
      assert.equal(await deposit(), depositBefore + parseEther("0.5"));

      const events = await chain.client.getContractEvents({ address: chain.paymaster, abi, fromBlock: 0n });
      const deposited = events.find((e) => e.eventName === "Deposited" && getAddress((e.args as { from: Address }).from) === bundler.account.address);
      assert.deepEqual(deposited?.args, { from: bundler.account.address, amount: parseEther("2") });
      const withdrawn = events.find((e) => e.eventName === "Withdrawn");
      assert.deepEqual(withdrawn?.args, { to, amount: parseEther("1.5") });
    });

    it("the owner adds stake, unlocks it, and withdraws it only after the unstake delay", async () => {
      type Info = { stake: bigint; staked: boolean; unstakeDelaySec: number; withdrawTime: number };
      const info = async () =>
        (await chain.client.readContract({ address: ENTRY_POINT_V07, abi: entryPointAbi(), functionName: "getDepositInfo", args: [chain.paymaster] })) as Info;
      const stakeBefore = (await info()).stake;
      await sendOwner("addStake", [86_400], parseEther("0.5"));
      assert.equal((await info()).stake, stakeBefore + parseEther("0.5"));
      assert.equal((await info()).staked, true);

      await sendOwner("unlockStake", []);
      assert.equal((await info()).staked, false);
      const to = privateKeyToAccount(generatePrivateKey()).address;
      await assert.rejects(
        chain.client.simulateContract({ account: chain.owner.account, address: chain.paymaster, abi, functionName: "withdrawStake", args: [to] }),
        /Stake withdrawal is not due/,
      );

      await chain.client.request({ method: "evm_increaseTime" as never, params: [86_400] as never });
      await chain.client.request({ method: "evm_mine" as never, params: [] as never });
      await sendOwner("withdrawStake", [to]);
      assert.equal(await chain.client.getBalance({ address: to }), stakeBefore + parseEther("0.5"));
      assert.equal((await info()).stake, 0n);

      const names = new Set((await chain.client.getContractEvents({ address: chain.paymaster, abi, fromBlock: 0n })).map((e) => e.eventName));
      for (const name of ["StakeAdded", "StakeUnlocked", "StakeWithdrawn", "SignerAdded", "SignerRemoved"]) assert.ok(names.has(name), `${name} emitted`);
    });
  });
});
