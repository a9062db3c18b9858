/**
 * Every common smart account, end to end on EntryPoint v0.7 under a key whose policy allows only the Counter
 * (`allowedTargets`): SimpleAccount, Safe (4337 module), Kernel v3.1, Nexus and LightAccount 2.0, each built by
 * permissionless 0.4.1 with its default contracts (vendored: devtools/chain/accounts/), sponsored through viem's
 * ERC-7677 paymaster client against our /rpc, bundled by alto, and settled — on PGlite and, when DATABASE_URL is
 * set, PostgreSQL. What the policy decodes from each account's callData (callData.ts) is what lands on chain.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { toKernelSmartAccount, toLightSmartAccount, toNexusSmartAccount, toSafeSmartAccount, toSimpleSmartAccount } from "permissionless/accounts";
import { type Abi, type Address, type PublicClient, encodeFunctionData } from "viem";
import type { SmartAccount } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ACCOUNT_FAMILIES, installAccountContracts } from "../../devtools/chain/accounts";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { createApiKey, rpcErrorOf, sponsoredAccountClient } from "../../devtools/testing/sponsorClients";
import { type SponsorStack, TEST_PRICE, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { deployCounter } from "../../devtools/userOperations";
import { ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07 } from "../chain/addresses";
import { checkLedger, getBalance } from "../ledger/ledger";
import { SPONSOR_ERROR_CODES } from "./errors";
import { chargeFen } from "./pricing";
import { settleChain } from "./settlement";

const entryPoint = { address: ENTRY_POINT_V07, version: "0.7" } as const;

type AccountKind = { name: string; create: (client: PublicClient) => Promise<SmartAccount> };

/** Each with a fresh owner key and the contracts permissionless uses by default (SimpleAccount: the canonical factory). */
const ACCOUNTS: AccountKind[] = [
  {
    name: "SimpleAccount 0.7",
    create: (client) => toSimpleSmartAccount({ client, owner: privateKeyToAccount(generatePrivateKey()), entryPoint, factoryAddress: SIMPLE_ACCOUNT_FACTORY_V07 }),
  },
  {
    name: "Safe 1.4.1 (4337 module 0.3.0)",
    create: (client) => toSafeSmartAccount({ client, owners: [privateKeyToAccount(generatePrivateKey())], version: "1.4.1", entryPoint }),
  },
  {
    name: "Kernel v3.1",
    create: (client) => toKernelSmartAccount({ client, owners: [privateKeyToAccount(generatePrivateKey())], version: "0.3.1", entryPoint }),
  },
  {
    name: "Nexus 1.0.0",
    create: (client) => toNexusSmartAccount({ client, owners: [privateKeyToAccount(generatePrivateKey())], version: "1.0.0", entryPoint }),
  },
  {
    name: "LightAccount 2.0.0",
    create: (client) => toLightSmartAccount({ client, owner: privateKeyToAccount(generatePrivateKey()), version: "2.0.0", entryPoint }),
  },
];

const FUND_FEN = 1_000_000n;

describeWithDatabases("smart accounts end to end on EntryPoint v0.7 through alto, under a target allowlist", (db) => {
  let stack: SponsorStack;
  let counter: { address: Address; abi: Abi };
  let key: string;
  before(async () => {
    // the settlement worker's first pass runs at start; the tests settle by hand, so it never runs again
    stack = await startSponsorStack({ db: db(), alto: true, env: { SETTLE_INTERVAL_MS: "600000" } });
    await installAccountContracts(stack.chain.client, stack.chain.owner);
    counter = await deployCounter(stack.chain.client, stack.chain.owner);
    key = await createApiKey(stack, { allowedTargets: [counter.address] });
  });
  after(async () => {
    await stack?.stop();
  });
  const increment = () => ({ to: counter.address, data: encodeFunctionData({ abi: counter.abi, functionName: "increment" }) });
  const countOf = async (account: Address) =>
    (await stack.chain.client.readContract({ address: counter.address, abi: counter.abi, functionName: "counts", args: [account] })) as bigint;
  const chain = () => stack.app.chains.values().next().value!;

  /** Sends `calls` from a new, funded `kind` account under the allowlist key; asserts it landed, paid by our paymaster, and settled. */
  async function landsAndSettles(kind: AccountKind, calls: ReturnType<typeof increment>[]): Promise<void> {
    const account = await kind.create(stack.chain.client);
    await stack.fund(account.address, FUND_FEN);
    const client = sponsoredAccountClient(stack, account, key);
    const hash = await client.sendUserOperation({ calls });
    const receipt = await client.waitForUserOperationReceipt({ hash, timeout: 30_000 });
    assert.equal(receipt.success, true, `${kind.name}: the operation reverted`);
    assert.equal(receipt.sender.toLowerCase(), account.address.toLowerCase());
    assert.equal(receipt.paymaster?.toLowerCase(), stack.chain.paymaster.toLowerCase(), "our paymaster paid");
    assert.equal(await countOf(account.address), BigInt(calls.length), "the Counter counted each call, from the account");
    assert.equal(await stack.chain.client.getBalance({ address: account.address }), 0n, "the account holds no ETH");

    const pass = await settleChain(db(), chain());
    assert.equal(pass.settled, 1);
    const expected = chargeFen(receipt.actualGasCost, TEST_PRICE);
    assert.ok(expected > 0n);
    assert.deepEqual(await getBalance(db(), account.address), { account: account.address.toLowerCase(), availableFen: FUND_FEN - expected, heldFen: 0n });
    const { rows } = await db().query<{ charged_fen: bigint; success: boolean }>("SELECT charged_fen, success FROM settlements WHERE user_op_hash = $1", [hash.toLowerCase()]);
    assert.deepEqual(rows, [{ charged_fen: expected, success: true }]);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  }

  it("the account contracts are installed once: a second installation finds them all and sends nothing", async () => {
    const owner = stack.chain.owner.account.address;
    const nonce = await stack.chain.client.getTransactionCount({ address: owner });
    const again = await installAccountContracts(stack.chain.client, stack.chain.owner);
    assert.equal(again.length, ACCOUNT_FAMILIES.flatMap((f) => f.contracts).length);
    assert.deepEqual(again.filter((c) => c.deployed), []);
    assert.equal(await stack.chain.client.getTransactionCount({ address: owner }), nonce);
  });

  for (const kind of ACCOUNTS) {
    it(`${kind.name}: a sponsored increment lands through alto and settles at ceil(actualGasCost × price), ledger clean`, async () => {
      await landsAndSettles(kind, [increment()]);
    });
  }

  for (const kind of ACCOUNTS) {
    it(`${kind.name}: a batch of two increments lands as one operation and settles`, async () => {
      await landsAndSettles(kind, [increment(), increment()]);
    });
  }

  for (const kind of ACCOUNTS) {
    it(`${kind.name}: a call outside the allowlist, alone or second in a batch, is refused at the stub naming the target, nothing held`, async () => {
      const outsider = stack.chain.paymaster;
      const account = await kind.create(stack.chain.client);
      await stack.fund(account.address, FUND_FEN);
      const client = sponsoredAccountClient(stack, account, key);
      for (const calls of [[{ to: outsider, data: "0x" as const }], [increment(), { to: outsider, data: "0x" as const }]]) {
        const error = await client.sendUserOperation({ calls }).then(
          () => assert.fail(`${kind.name}: sponsored a call to ${outsider}`),
          (e: unknown) => rpcErrorOf(e),
        );
        assert.equal(error.code, SPONSOR_ERROR_CODES.policy_rejected, error.message);
        assert.match(error.message, new RegExp(`calls ${outsider}, which is not on this key's target allowlist`, "i"));
      }
      assert.deepEqual(await getBalance(db(), account.address), { account: account.address.toLowerCase(), availableFen: FUND_FEN, heldFen: 0n });
    });
  }
});
