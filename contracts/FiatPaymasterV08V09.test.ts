/**
 * FiatPaymasterV08 and FiatPaymasterV09 through the real EntryPoint v0.8 and v0.9 on anvil: SimpleAccounts and
 * EIP-7702 EOAs delegating to Simple7702Account (first operation with the 0x7702 initCode marker and a type-4
 * authorization, later ones without), the v0.8 paymaster hash with the EntryPoint's 7702 initCode override, v0.9's
 * parallel signing (the account signs before the paymaster), and the deposit and stake functions both share.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type Abi,
  type Address,
  type Hex,
  type LocalAccount,
  concat,
  encodeFunctionData,
  getAddress,
  keccak256,
  parseEther,
  slice,
  toHex,
} from "viem";
import { toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ENTRY_POINT_V08, type EntryPointVersion, SIMPLE_7702_ACCOUNT_V08, SIMPLE_7702_ACCOUNT_V09 } from "../server/chain/addresses";
import { fiatPaymasterArtifact } from "../server/chain/artifacts";
import {
  STUB_SIGNATURE,
  encodePaymasterData,
  encodePaymasterDataV09,
  encodePaymasterSignatureSuffix,
  getPaymasterHash,
  getPaymasterHashV09,
  isEip7702Marker,
} from "../server/sponsorship/signing/paymasterData";
import { DEV_KEYS, type LocalChain, localClients, startLocalChain } from "../devtools/chain/localChain";
import type { OperatorWallet } from "../server/chain/operator";
import {
  ENTRY_POINTS,
  type Eip7702EntryPointVersion,
  type UserOpV08V09,
  type VersionedAccount,
  buildVersionedUserOperation,
  deployCounter,
  eip7702AuthorizationFor,
  newEip7702Account,
  newVersionedSimpleAccount,
  signAsVersionedAccount,
  sponsorV08 as sponsorOperationV08,
  sponsorV09 as sponsorOperationV09,
  submitOperations,
  userOperationEventsAt,
  versionedUserOpHash,
} from "../devtools/userOperations";

const signer = privateKeyToAccount(DEV_KEYS.signer);

type Version = Eip7702EntryPointVersion;
type UserOperation = UserOpV08V09;
type Account = VersionedAccount;

describe("FiatPaymasterV08 / FiatPaymasterV09 through the real EntryPoint v0.8 / v0.9", () => {
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
  const count = (account: Address) =>
    chain.client.readContract({ address: counter.address, abi: counter.abi, functionName: "counts", args: [account] }) as Promise<bigint>;
  const abiOf = (version: EntryPointVersion): Abi => fiatPaymasterArtifact(version).abi;
  const depositOf = (version: Version) =>
    chain.client.readContract({ address: chain.paymasters[version], abi: abiOf(version), functionName: "getDeposit" }) as Promise<bigint>;

  const simpleAccount = (version: Version) => newVersionedSimpleAccount(chain.client, version);
  const eip7702Account = (version: Version) => newEip7702Account(chain.client, version);
  const authorizationFor = (account: Account) => eip7702AuthorizationFor(chain.client, chainId, account);
  const build = (account: Account, calls = [increment()]) => buildVersionedUserOperation(chain.client, account, { calls, paymaster: chain.paymasters[account.version] });
  const userOpHash = (account: Account, op: UserOperation) => versionedUserOpHash(chainId, account, op);
  const signAsAccount = (account: Account, op: UserOperation) => signAsVersionedAccount(chainId, account, op);

  /** v0.8: paymasterData signed over getHash, with the 7702 delegate in place of a marker initCode. */
  const sponsorV08 = (op: UserOperation, options: { delegate?: Address; by?: LocalAccount; validUntil?: number } = {}) =>
    sponsorOperationV08(op, { signer: options.by ?? signer, chainId, eip7702Delegate: options.delegate, validUntil: options.validUntil });

  /** v0.9: the window as paymasterData; the signature over getHash(userOpHash) as paymasterSignature. */
  const sponsorV09 = (account: Account, op: UserOperation, options: { by?: LocalAccount; paymasterForHash?: Address } = {}) =>
    sponsorOperationV09(account, op, { signer: options.by ?? signer, chainId, paymasterForHash: options.paymasterForHash });

  const window = () => ({ validUntil: Math.floor(Date.now() / 1000) + 600, validAfter: 0 });

  async function land(account: Account, op: UserOperation) {
    const authorization = await authorizationFor(account);
    const entryPoint = ENTRY_POINTS[account.version];
    const receipt = await submitOperations(chain.client, bundler, entryPoint, [op], authorization ? [authorization] : undefined);
    const [event] = userOperationEventsAt(receipt, entryPoint);
    assert.ok(event, "a UserOperationEvent was emitted");
    assert.equal(event.success, true);
    assert.equal(getAddress(event.paymaster), chain.paymasters[account.version]);
    assert.equal(event.userOpHash, userOpHash(account, op), "the EntryPoint's userOpHash is the one computed off chain");
    return event;
  }

  const failure = async (account: Account, op: UserOperation): Promise<string> => {
    const authorization = await authorizationFor(account);
    return submitOperations(chain.client, bundler, ENTRY_POINTS[account.version], [op], authorization ? [authorization] : undefined).then(
      () => assert.fail("handleOps succeeded"),
      (error: Error) => error.message,
    );
  };

  describe("EntryPoint v0.8", () => {
    it("a zero-ETH SimpleAccount's first and second operations are paid out of the paymaster's deposit", async () => {
      const account = await simpleAccount("0.8");
      for (const expected of [1n, 2n]) {
        const before = await depositOf("0.8");
        const op = await signAsAccount(account, await sponsorV08(await build(account)));
        if (expected === 1n) assert.ok(op.factory, "the first operation deploys the account");
        const event = await land(account, op);
        assert.equal(await depositOf("0.8"), before - event.actualGasCost);
        assert.equal(await count(account.smart.address), expected);
      }
      assert.equal(await chain.client.getBalance({ address: account.smart.address }), 0n);
    });

    it("an EIP-7702 EOA's first operation (0x7702 marker, type-4 authorization) and a later one are sponsored", async () => {
      const account = await eip7702Account("0.8");
      const first = await build(account);
      assert.ok(isEip7702Marker(first.factory), "an undelegated EOA's first operation carries the 0x7702 marker");
      await land(account, await signAsAccount(account, await sponsorV08(first)));
      assert.equal(await chain.client.getCode({ address: account.eoa!.address }), concat(["0xef0100", SIMPLE_7702_ACCOUNT_V08]).toLowerCase());
      const later = await build(account);
      assert.equal(later.factory, undefined, "a delegated EOA sends no marker");
      await land(account, await signAsAccount(account, await sponsorV08(later)));
      assert.equal(await count(account.eoa!.address), 2n);
      assert.equal(await chain.client.getBalance({ address: account.eoa!.address }), 0n, "the EOA still holds no ETH");
    });

    it("the signature binds the 7702 delegate: signed for another delegate, or for the marker itself, it fails with AA34", async () => {
      for (const delegate of [SIMPLE_7702_ACCOUNT_V09, "0x7702000000000000000000000000000000000000" as Address]) {
        const account = await eip7702Account("0.8");
        const op = await signAsAccount(account, await sponsorV08(await build(account), { delegate }));
        assert.equal(await failure(account, op), "AA34 signature error");
      }
    });

    it("computes the same hash off chain as getHash on chain, for a delegated EOA's marker initCode too", async () => {
      const account = await eip7702Account("0.8");
      await land(account, await signAsAccount(account, await sponsorV08(await build(account))));
      const later = await build(account);
      for (const op of [later, { ...later, factory: "0x7702", factoryData: "0x" }, { ...later, factory: "0x7702000000000000000000000000000000000000", factoryData: "0xabcdef" }] as UserOperation[]) {
        const { validUntil, validAfter } = { validUntil: 1_900_000_000, validAfter: 1_800_000_000 };
        const stubbed = { ...op, paymasterData: encodePaymasterData({ validUntil, validAfter, signature: STUB_SIGNATURE }) };
        const onChain = await chain.client.readContract({
          address: chain.paymasters["0.8"],
          abi: abiOf("0.8"),
          functionName: "getHash",
          args: [toPackedUserOperation(stubbed), validUntil, validAfter],
        });
        const offChain = getPaymasterHash({
          userOperation: { ...op, paymasterVerificationGasLimit: op.paymasterVerificationGasLimit!, paymasterPostOpGasLimit: op.paymasterPostOpGasLimit! },
          chainId,
          paymaster: chain.paymasters["0.8"],
          entryPoint: ENTRY_POINT_V08,
          validUntil,
          validAfter,
          eip7702Delegate: isEip7702Marker(op.factory) ? SIMPLE_7702_ACCOUNT_V08 : undefined,
        });
        assert.equal(offChain, onChain, `factory ${op.factory ?? "none"}`);
      }
    });

    it("a stranger's signature, an expired window and the stub are refused (AA34, AA32, AA34)", async () => {
      const account = await simpleAccount("0.8");
      const op = await build(account);
      const strangerKey = privateKeyToAccount(generatePrivateKey());
      assert.equal(await failure(account, await signAsAccount(account, await sponsorV08(op, { by: strangerKey }))), "AA34 signature error");
      const expired = Math.floor(Date.now() / 1000) - 10_000;
      assert.equal(await failure(account, await signAsAccount(account, await sponsorV08(op, { validUntil: expired }))), "AA32 paymaster expired or not due");
      const stub = { ...op, paymasterData: encodePaymasterData({ ...window(), signature: STUB_SIGNATURE }) };
      assert.equal(await failure(account, await signAsAccount(account, stub)), "AA34 signature error");
    });
  });

  describe("EntryPoint v0.9", () => {
    it("parallel signing: the account signs first, the paymaster's signature is added after, and the operation lands", async () => {
      for (const make of [simpleAccount, eip7702Account]) {
        const account = await make("0.9");
        for (const expected of [1n, 2n]) {
          const built = await build(account);
          const withData = { ...built, paymasterData: encodePaymasterDataV09(window()), paymasterSignature: STUB_SIGNATURE } as UserOperation;
          const accountSigned = await signAsAccount(account, withData); // before the paymaster has signed
          const paymasterHash = getPaymasterHashV09({ userOpHash: userOpHash(account, withData), paymaster: chain.paymasters["0.9"] });
          const op = { ...accountSigned, paymasterSignature: await signer.signMessage({ message: { raw: paymasterHash } }) } as UserOperation;
          const before = await depositOf("0.9");
          const event = await land(account, op);
          assert.equal(await depositOf("0.9"), before - event.actualGasCost);
          assert.equal(await count(account.smart.address), expected);
        }
      }
    });

    it("paymasterAndData is 139 bytes: paymaster ‖ gas ‖ window ‖ signature ‖ uint16 65 ‖ magic", async () => {
      const account = await simpleAccount("0.9");
      const op = await sponsorV09(account, await build(account));
      const packed = toPackedUserOperation(op).paymasterAndData;
      assert.equal((packed.length - 2) / 2, 139);
      assert.equal(slice(packed, 52, 64), op.paymasterData, "paymasterData is the window alone");
      assert.equal(slice(packed, 64), encodePaymasterSignatureSuffix((op as { paymasterSignature: Hex }).paymasterSignature));
      assert.equal(slice(packed, 129), "0x004122e325a297439656");
    });

    it("computes the same hash off chain as getHash on chain", async () => {
      for (const hash of [keccak256("0x01"), `0x${"ff".repeat(32)}` as Hex]) {
        const onChain = await chain.client.readContract({ address: chain.paymasters["0.9"], abi: abiOf("0.9"), functionName: "getHash", args: [hash] });
        assert.equal(getPaymasterHashV09({ userOpHash: hash, paymaster: chain.paymasters["0.9"] }), onChain);
      }
    });

    it("refuses (AA34) a stranger's signature, one made for another paymaster, the stub, a missing or mangled suffix", async () => {
      const account = await eip7702Account("0.9");
      const op = await build(account);
      const good = await sponsorV09(account, op);
      const strangerKey = privateKeyToAccount(generatePrivateKey());
      const packedGood = toPackedUserOperation(good).paymasterAndData;
      const cases: [string, UserOperation][] = [
        ["a stranger's signature", await sponsorV09(account, op, { by: strangerKey })],
        ["signed for another paymaster", await sponsorV09(account, op, { paymasterForHash: chain.paymasters["0.8"] })],
        ["the stub", { ...good, paymasterSignature: STUB_SIGNATURE } as UserOperation],
        ["no paymasterSignature at all", { ...good, paymasterSignature: undefined } as UserOperation],
        // a 64-byte signature with a matching length field: the EntryPoint accepts the suffix, the paymaster not
        ["a 64-byte signature", { ...good, paymasterSignature: slice((good as { paymasterSignature: Hex }).paymasterSignature, 0, 64) } as UserOperation],
      ];
      for (const [name, bad] of cases) {
        assert.equal(await failure(account, await signAsAccount(account, bad)), "AA34 signature error", name);
      }
      // control: the intact operation lands
      assert.equal((packedGood.length - 2) / 2, 139);
      await land(account, await signAsAccount(account, good));
    });
  });

  for (const version of ["0.8", "0.9"] as const) {
    describe(`v${version} paymaster's deposit, stake and guards`, () => {
      const paymaster = () => chain.paymasters[version];
      const abi = () => abiOf(version);
      async function sendOwner(functionName: string, args: readonly unknown[], value?: bigint) {
        const hash = await chain.owner.writeContract({ address: paymaster(), abi: abi(), functionName, args, value });
        assert.equal((await chain.client.waitForTransactionReceipt({ hash })).status, "success");
      }

      it("serves its own EntryPoint, which holds its deposit; anyone (here the bundler's key) deposits, only the owner withdraws", async () => {
        assert.equal(await chain.client.readContract({ address: paymaster(), abi: abi(), functionName: "entryPoint" }), ENTRY_POINTS[version].address);
        const before = await depositOf(version);
        await bundler.writeContract({ address: paymaster(), abi: abi(), functionName: "deposit", value: parseEther("2") }).then((h) => chain.client.waitForTransactionReceipt({ hash: h }));
        assert.equal(await depositOf(version), before + parseEther("2"));
        await assert.rejects(
          chain.client.simulateContract({ account: stranger.account, address: paymaster(), abi: abi(), functionName: "withdrawTo", args: [stranger.account.address, 1n] }),
          /OwnableUnauthorizedAccount/,
        );
        const recipient = privateKeyToAccount(generatePrivateKey()).address;
        await sendOwner("withdrawTo", [recipient, parseEther("1")]);
        assert.equal(await chain.client.getBalance({ address: recipient }), parseEther("1"));
        assert.equal(await depositOf(version), before + parseEther("1"));
      });

      it("validatePaymasterUserOp only for its EntryPoint, postOp never, renounceOwnership disabled", async () => {
        const account = await simpleAccount("0.8");
        const op = toPackedUserOperation({ ...(await build(account)), paymaster: paymaster(), paymasterData: "0x" } as UserOperation);
        await assert.rejects(
          chain.client.readContract({ account: ENTRY_POINTS[version === "0.8" ? "0.9" : "0.8"].address, address: paymaster(), abi: abi(), functionName: "validatePaymasterUserOp", args: [op, keccak256("0x"), 0n] }),
          /NotFromEntryPoint/,
        );
        await assert.rejects(
          chain.client.readContract({ account: ENTRY_POINTS[version].address, address: paymaster(), abi: abi(), functionName: "postOp", args: [0, "0x", 0n, 0n] }),
          /PostOpNotSupported/,
        );
        await assert.rejects(
          chain.client.simulateContract({ account: chain.owner.account, address: paymaster(), abi: abi(), functionName: "renounceOwnership" }),
          /RenounceOwnershipDisabled/,
        );
      });

      it("stake: added, unlocked, withdrawn after the delay, through the EntryPoint (runs last for this version)", async () => {
        const info = async () =>
          (await chain.client.readContract({ address: ENTRY_POINTS[version].address, abi: ENTRY_POINTS[version].abi, functionName: "getDepositInfo", args: [paymaster()] })) as {
            stake: bigint;
            staked: boolean;
            withdrawTime: number;
          };
        assert.equal((await info()).staked, true, "deployed staked");
        await sendOwner("addStake", [86_400], parseEther("1"));
        assert.equal((await info()).stake, parseEther("2"));
        await sendOwner("unlockStake", []);
        assert.equal((await info()).staked, false);
        await chain.client.request({ method: "evm_increaseTime" as never, params: [toHex(86_401)] as never });
        await chain.client.request({ method: "evm_mine" as never, params: [] as never });
        const recipient = privateKeyToAccount(generatePrivateKey()).address;
        await sendOwner("withdrawStake", [recipient]);
        assert.equal(await chain.client.getBalance({ address: recipient }), parseEther("2"));
        assert.equal((await info()).stake, 0n);
      });
    });
  }
});
