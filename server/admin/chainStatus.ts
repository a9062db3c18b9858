/**
 * What the dashboard shows for each configured (chain, EntryPoint): the paymaster's EntryPoint deposit and stake, its owner
 * and signers (read fresh from the chain), the deposit monitor's verdict, the worst case of the open holds, and
 * how far the settlement worker has read.
 *
 * The reads are the ones `server/chain/operator.ts` (readPaymasterStatus) makes, done here against the chain's
 * configured EntryPoint and with a deadline: a dead RPC must not hold the page, and what the database knows is
 * answered regardless.
 */
import type { Address } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
// typed ABIs (viem's EntryPoint v0.7, our committed FiatPaymaster one): no compiled artifact is needed at run time
import { fiatPaymasterAbi } from "../chain/fiatPaymasterAbi";
import type { ChainRuntime, EntryPointRuntime } from "../chain/chainRuntime";
import type { EntryPointVersion } from "../chain/addresses";
import type { Queryable } from "../platform/db/database";
import type { DepositHealth } from "../sponsorship/depositMonitor";
import { countOpenHolds, outstandingHoldsWei } from "../sponsorship/holds";

const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

export type ChainStatus = {
  chainId: number;
  name: string;
  paymaster: Address;
  entryPoint: Address;
  entryPointVersion: EntryPointVersion;
  minDepositWei: string;
  rpc: { ok: boolean; error: string | null; headBlock: string | null };
  /** The deposit monitor's verdict: while false, sponsorship on the chain answers deposit_low. */
  healthy: boolean;
  reason: string | null;
  /** deposit − outstanding holds is below minDepositWei (false when no deposit figure is known at all). */
  lowDeposit: boolean;
  deposit: {
    /** Read now from the EntryPoint, or the monitor's last figure when the RPC does not answer. */
    depositWei: string | null;
    source: "chain" | "monitor" | null;
    /** The worst-case cost of the open holds, from the database now. */
    outstandingWei: string;
    openHolds: number;
    /** depositWei − outstandingWei; negative when the holds exceed the deposit. */
    spareWei: string | null;
    monitor: { depositWei: string | null; outstandingWei: string | null; checkedAt: string | null };
  };
  stake: { stakeWei: string; staked: boolean; unstakeDelaySec: number; withdrawTime: string | null } | null;
  owner: Address | null;
  pendingOwner: Address | null;
  signers: Address[] | null;
  settlement: {
    cursorBlock: string | null;
    cursorUpdatedAt: string | null;
    /** The cursor block's own timestamp: holds expire by it (chain time). */
    cursorBlockTime: string | null;
    lagBlocks: string | null;
    confirmations: number;
    /** Events or undos recorded in settlement_failures and not yet resolved (each is alerted). */
    openFailures: number;
  };
};

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function readChain(chain: ChainRuntime, entryPoint: EntryPointRuntime) {
  const { client } = chain;
  const { paymaster } = entryPoint;
  // the StakeManager's and the paymasters' operator ABIs are the same in every version
  const [headBlock, info, owner, pendingOwner, signers] = await Promise.all([
    client.getBlockNumber({ cacheTime: 0 }),
    client.readContract({ address: entryPoint.address, abi: entryPoint07Abi, functionName: "getDepositInfo", args: [paymaster] }),
    client.readContract({ address: paymaster, abi: fiatPaymasterAbi, functionName: "owner" }),
    client.readContract({ address: paymaster, abi: fiatPaymasterAbi, functionName: "pendingOwner" }),
    client.readContract({ address: paymaster, abi: fiatPaymasterAbi, functionName: "signers" }),
  ]);
  return { headBlock, info, owner, pendingOwner: pendingOwner === ZERO_ADDRESS ? null : pendingOwner, signers: [...signers] };
}

export async function readChainStatus(db: Queryable, chain: ChainRuntime, entryPoint: EntryPointRuntime, options: { timeoutMs: number; deposit: DepositHealth }): Promise<ChainStatus> {
  const { config } = chain;
  const [outstanding, open, cursor, failures, onChain] = await Promise.all([
    outstandingHoldsWei(db, config.chainId, entryPoint.address),
    countOpenHolds(db, config.chainId, entryPoint.address),
    db.query<{ block_number: bigint; updated_at: Date; block_timestamp: Date | null }>("SELECT block_number, updated_at, block_timestamp FROM chain_cursors WHERE chain_id = $1", [config.chainId]),
    db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM settlement_failures WHERE chain_id = $1 AND resolved_at IS NULL", [config.chainId]),
    withDeadline(readChain(chain, entryPoint), options.timeoutMs, `chain ${config.chainId}'s RPC`).then(
      (read) => ({ ok: true as const, read }),
      (error: Error) => ({ ok: false as const, error: error.message.split("\n")[0]! }),
    ),
  ]);
  const monitor = options.deposit;
  const read = onChain.ok ? onChain.read : undefined;
  const depositWei = read?.info.deposit ?? monitor.depositWei;
  const spare = depositWei === undefined ? undefined : depositWei - outstanding;
  const cursorBlock = cursor.rows[0]?.block_number;
  return {
    chainId: config.chainId,
    name: config.name,
    paymaster: entryPoint.paymaster,
    entryPoint: entryPoint.address,
    entryPointVersion: entryPoint.version,
    minDepositWei: config.minDepositWei.toString(),
    rpc: { ok: onChain.ok, error: onChain.ok ? null : onChain.error, headBlock: read?.headBlock.toString() ?? null },
    healthy: monitor.healthy,
    reason: monitor.reason ?? null,
    lowDeposit: spare !== undefined && spare < config.minDepositWei,
    deposit: {
      depositWei: depositWei?.toString() ?? null,
      source: read ? "chain" : monitor.depositWei !== undefined ? "monitor" : null,
      outstandingWei: outstanding.toString(),
      openHolds: open,
      spareWei: spare?.toString() ?? null,
      monitor: {
        depositWei: monitor.depositWei?.toString() ?? null,
        outstandingWei: monitor.outstandingWei?.toString() ?? null,
        checkedAt: monitor.checkedAt?.toISOString() ?? null,
      },
    },
    stake: read
      ? {
          stakeWei: read.info.stake.toString(),
          staked: read.info.staked,
          unstakeDelaySec: Number(read.info.unstakeDelaySec),
          withdrawTime: Number(read.info.withdrawTime) === 0 ? null : new Date(Number(read.info.withdrawTime) * 1000).toISOString(),
        }
      : null,
    owner: read?.owner ?? null,
    pendingOwner: read?.pendingOwner ?? null,
    signers: read?.signers ?? null,
    settlement: {
      cursorBlock: cursorBlock?.toString() ?? null,
      cursorUpdatedAt: cursor.rows[0]?.updated_at.toISOString() ?? null,
      cursorBlockTime: cursor.rows[0]?.block_timestamp?.toISOString() ?? null,
      lagBlocks: read && cursorBlock !== undefined ? (read.headBlock - cursorBlock).toString() : null,
      confirmations: config.confirmations,
      openFailures: Number(failures.rows[0]!.n),
    },
  };
}
