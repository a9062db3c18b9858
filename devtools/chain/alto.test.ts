import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { type Abi, encodeFunctionData, getAddress, http } from "viem";
import type { UserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { createSmartAccountClient } from "permissionless";
import { ENTRY_POINT_V07, ENTRY_POINT_V08, ENTRY_POINT_V09, SIMPLE_ACCOUNT_FACTORY_V07 } from "../../server/chain/addresses";
import { createLocalSigner } from "../../server/sponsorship/signing/signer";
import { encodePaymasterData, encodeStubPaymasterData, getPaymasterHash } from "../../server/sponsorship/signing/paymasterData";
import { deployCounter } from "../userOperations";
import { type Alto, AltoError, LOCAL_UTILITY_KEY, startAlto } from "./alto";
import { freePort } from "./anvil";
import { DEV_KEYS, type LocalChain, startLocalChain } from "./localChain";
import { readPaymasterStatus } from "../../server/chain/operator";

/** Room enough for FiatPaymaster's validation (ecrecover and a signer lookup); it has no postOp. */
const PAYMASTER_GAS = { paymasterVerificationGasLimit: 50_000n, paymasterPostOpGasLimit: 0n };

/** JSON-RPC to alto, one request at a time (alto rejects batches). */
async function rpc(url: string, method: string, params: unknown[] = []): Promise<unknown> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return ((await response.json()) as { result?: unknown }).result;
}

const answers = (url: string) => rpc(url, "eth_supportedEntryPoints").then(() => true, () => false);

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    if (await condition()) return true;
  }
  return false;
}

describe("alto, the bundler, on the local chain", () => {
  let chain: LocalChain;
  let alto: Alto;
  const startLocalAlto = (rpcUrl: string) => startAlto({ rpcUrl, executorKeys: [DEV_KEYS.bundler], utilityKey: LOCAL_UTILITY_KEY });

  before(async () => {
    chain = await startLocalChain();
    alto = await startLocalAlto(chain.anvil.rpcUrl);
  });
  after(async () => {
    await alto?.stop();
    await chain?.stop();
  });

  it("serves EntryPoint v0.7, v0.8 and v0.9 over JSON-RPC", async () => {
    assert.deepEqual(await rpc(alto.url, "eth_supportedEntryPoints"), [ENTRY_POINT_V07, ENTRY_POINT_V08, ENTRY_POINT_V09]);
    assert.equal(await rpc(alto.url, "eth_chainId"), "0x7a69");
  });

  it("bundles a zero-ETH SimpleAccount's operation sponsored by FiatPaymaster, paid for out of the paymaster's deposit", async () => {
    const counter = await deployCounter(chain.client, chain.owner);
    const account = await toSimpleSmartAccount({
      client: chain.client,
      owner: privateKeyToAccount(generatePrivateKey()),
      entryPoint: { address: ENTRY_POINT_V07, version: "0.7" },
      factoryAddress: SIMPLE_ACCOUNT_FACTORY_V07,
    });
    const signer = createLocalSigner(DEV_KEYS.signer);
    // alto checks validUntil against the wall clock, not the chain's
    const validUntil = Math.floor(Date.now() / 1000) + 300;
    const validAfter = 0;
    const smartAccountClient = createSmartAccountClient({
      account,
      client: chain.client,
      bundlerTransport: http(alto.url),
      pollingInterval: 100, // anvil mines at once; viem's default would poll for the receipt every 4 s
      paymaster: {
        async getPaymasterStubData() {
          return { paymaster: chain.paymaster, paymasterData: encodeStubPaymasterData({ validUntil, validAfter }), ...PAYMASTER_GAS };
        },
        async getPaymasterData({ chainId, entryPointAddress, ...userOperation }) {
          const hash = getPaymasterHash({
            // viem asks for the final data once gas limits and fees are filled in: the fields the signature binds
            userOperation: { ...(userOperation as UserOperation<"0.7">), ...PAYMASTER_GAS },
            chainId,
            paymaster: chain.paymaster,
            entryPoint: entryPointAddress,
            validUntil,
            validAfter,
          });
          const signature = await signer.signHash(hash);
          return { paymaster: chain.paymaster, paymasterData: encodePaymasterData({ validUntil, validAfter, signature }), ...PAYMASTER_GAS };
        },
      },
    });
    assert.equal(await chain.client.getBalance({ address: account.address }), 0n, "the account starts with no ETH");
    const depositBefore = (await readPaymasterStatus(chain.client, chain.paymaster)).deposit;

    const userOpHash = await smartAccountClient.sendUserOperation({
      calls: [{ to: counter.address, data: encodeFunctionData({ abi: counter.abi as Abi, functionName: "increment" }) }],
    });
    const receipt = await smartAccountClient.waitForUserOperationReceipt({ hash: userOpHash, timeout: 30_000 });

    assert.equal(receipt.success, true);
    assert.equal(receipt.receipt.status, "success");
    assert.equal(getAddress(receipt.paymaster!), chain.paymaster);
    assert.equal(getAddress(receipt.sender), account.address);
    assert.ok(receipt.actualGasCost > 0n);
    const depositAfter = (await readPaymasterStatus(chain.client, chain.paymaster)).deposit;
    assert.equal(depositAfter, depositBefore - receipt.actualGasCost, "the deposit paid exactly the actual gas cost");
    assert.equal(await chain.client.getBalance({ address: account.address }), 0n, "the account still holds no ETH");
    assert.notEqual(await chain.client.getCode({ address: account.address }), undefined, "the account was deployed");
    const count = await chain.client.readContract({ address: counter.address, abi: counter.abi, functionName: "counts", args: [account.address] });
    assert.equal(count, 1n, "the call executed");
  });

  it("stop() ends the alto process and frees its port", async () => {
    const second = await startLocalAlto(chain.anvil.rpcUrl);
    const pid = second.process.pid!;
    assert.ok(isRunning(pid));

    await second.stop();

    assert.equal(isRunning(pid), false, "no alto process is left");
    await assert.rejects(fetch(second.url, { method: "POST", body: "{}" }), "nothing listens on its port");
    await second.stop(); // a second stop is harmless
  });

  it("exits by itself when the process that started it dies, even by SIGKILL", { timeout: 60_000 }, async () => {
    // another process starts alto and prints its URL; killing that process outright runs none of its cleanup
    const script = `require(${JSON.stringify(path.join(__dirname, "alto.ts"))})
      .startAlto({ rpcUrl: "${chain.anvil.rpcUrl}", executorKeys: ["${DEV_KEYS.bundler}"], utilityKey: "${LOCAL_UTILITY_KEY}" })
      .then((alto) => console.log(alto.url))`;
    const starter = spawn(process.execPath, ["--import", "tsx", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const url = await new Promise<string>((resolve, reject) => {
      starter.stdout!.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()));
      starter.once("exit", (code) => reject(new Error(`the starting process exited with ${code} before alto was up`)));
    });
    assert.equal(await answers(url), true, `alto answers at ${url}`);

    starter.kill("SIGKILL");

    assert.ok(await eventually(async () => !(await answers(url)), 10_000), "the orphaned alto shut down");
  });

  it("refuses a port that is already in use, before starting alto", async () => {
    const busy = createServer().listen(0, "127.0.0.1");
    await once(busy, "listening");
    const { port } = busy.address() as AddressInfo;
    try {
      await assert.rejects(startAlto({ rpcUrl: chain.anvil.rpcUrl, port, executorKeys: [DEV_KEYS.bundler] }), {
        name: "AltoError",
        message: `port ${port} is in use (EADDRINUSE): alto cannot listen there`,
      });
    } finally {
      busy.close();
    }
  });

  it("fails with an AltoError that quotes alto's own error when the chain's RPC does not answer", async () => {
    const deadRpc = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(startLocalAlto(deadRpc), (error: unknown) => {
      assert.ok(error instanceof AltoError);
      assert.match(error.message, /alto exited with 1 while starting/);
      assert.ok(error.message.includes(deadRpc), error.message);
      assert.match(error.message, /HTTP request failed/);
      return true;
    });
  });
});
