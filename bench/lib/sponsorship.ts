/**
 * Sponsorship load for the benchmarks: a local chain with the paymasters deposited, funded senders (and holds open
 * among them) in the database, the service's configuration for that chain, load jobs of new operations, and the
 * check that every signed answer has its hold and signed operation on record.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { parseEther, toHex } from "viem";
import { DEV_KEYS, type LocalChain, startLocalChain } from "../../devtools/chain/localChain";
import { ENTRY_POINT_V07 } from "../../server/chain/addresses";
import { applyEntries } from "../../server/ledger/ledger";
import type { Database } from "../../server/platform/db/database";
import type { LoadJob } from "../load/client";

/** The path the service answers JSON-RPC on. */
const RPC_PATH = "/rpc";
/** Each load job's nonce keys start this far above the previous job's: every request a new operation. */
const NONCE_KEYS_PER_JOB = 10_000_000;
/** What a funded sender starts with: far more than any run spends. */
const FUNDING_FEN = 10n ** 12n;
/** Seeded rows per statement. */
const CHUNK = 5_000;
/** The prefix of seeded holds' ids, which the record check leaves out. */
const SEEDED_HOLD_PREFIX = "h_seed_";

/** anvil with the paymasters and a deposit that covers every hold a run makes (nothing lands on chain, so holds only grow). */
export const startBenchChain = (): Promise<LocalChain> => startLocalChain({ deposit: parseEther("5000"), args: ["--balance", "100000"] });

/** The most an operation of the load generator's shape can cost at `gasPrice` × 2 (its maxFeePerGas). */
export const maxCostWei = (gasPrice: bigint): bigint => (100_000n + 500_000n + 50_000n + 60_000n + 35_000n) * gasPrice * 2n;

/** `count` new sender addresses. */
export const newSenders = (count: number): string[] => Array.from({ length: count }, () => `0x${randomBytes(20).toString("hex")}`);

/**
 * Funds `senders` (one top-up ledger entry each, referenced `bench-<address>`) and opens `openHolds` holds spread over
 * them, with their ledger entries; then vacuums and analyses the tables it filled, as autovacuum has long done for
 * holds that piled up over hours in production (a run would otherwise measure the first minute's wait for autovacuum
 * to notice a bulk insert: 45 % more database time per hold batch). Not an empty holds table: statistics that say
 * "empty" make the plans cached on the server's connections scan it as it grows, until the next ANALYZE
 * (server/platform/db/maintenance.ts).
 */
export async function seedSenders(db: Database, senders: readonly string[], openHolds: number, chainId: number, holdMaxCostWei: bigint): Promise<void> {
  for (let i = 0; i < senders.length; i += CHUNK) {
    const chunk = senders.slice(i, i + CHUNK);
    await db.transaction(async (tx) => {
      await tx.query("INSERT INTO accounts (address) SELECT unnest($1::text[])", [chunk]);
      await applyEntries(tx, chunk.map((account) => ({ account, kind: "topup", availableDeltaFen: FUNDING_FEN, heldDeltaFen: 0n, reference: `bench-${account}` })));
    });
  }
  const validUntil = new Date(Date.now() + 6 * 3_600_000).toISOString();
  for (let i = 0; i < openHolds; i += CHUNK) {
    const n = Math.min(CHUNK, openHolds - i);
    const ids = Array.from({ length: n }, (_, j) => `${SEEDED_HOLD_PREFIX}${i + j}`);
    const accounts = ids.map((_, j) => senders[(i + j) % senders.length]!);
    // nonce keys far above the ones the load generator uses
    const nonces = ids.map((_, j) => ((1n << 150n) + BigInt(i + j)) << 64n);
    await db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO holds (id, chain_id, entry_point, account, nonce, status, amount_fen, max_cost_wei, revision, valid_until)
         SELECT id, $2, $3, account, nonce, 'open', 1000, $4::numeric, 1, $5::timestamptz FROM unnest($1::text[], $6::text[], $7::text[]) AS t(id, account, nonce)`,
        [ids, chainId, ENTRY_POINT_V07.toLowerCase(), holdMaxCostWei.toString(), validUntil, accounts, nonces.map(String)],
      );
      await applyEntries(tx, ids.map((id, j) => ({ account: accounts[j]!, kind: "hold", availableDeltaFen: -1000n, heldDeltaFen: 1000n, reference: `hold:${id}:1` })));
    });
  }
  await db.query(`VACUUM ANALYZE accounts, ledger_entries${openHolds > 0 ? ", holds" : ""}`);
}

/**
 * The service's configuration for sponsoring on `chain` with `apiKey`. Holds pile up (nothing lands on chain in a
 * benchmark): they are allowed; rate limits are off, since one load generator from one IP would only measure the
 * limiter refusing.
 */
export function sponsorshipEnv(chain: LocalChain, apiKey: string): NodeJS.ProcessEnv {
  return {
    CHAINS: JSON.stringify([{ chainId: chain.anvil.chainId, rpcUrl: chain.anvil.rpcUrl, paymaster: chain.paymaster, fenPerNative: "2000000", markupBps: 500, confirmations: 0, minDepositWei: "1" }]),
    SIGNER_PRIVATE_KEY: DEV_KEYS.signer,
    BOOTSTRAP_API_KEY: apiKey,
    MAX_HOLDS_PER_SENDER: "1000",
    MAX_HOLDS_PER_SENDER_PER_API_KEY: "1000",
    MAX_HOLDS_PER_SENDER_PER_IP: "1000",
    RATE_LIMIT_IP_PER_MINUTE: "0",
    RATE_LIMIT_API_KEY_PER_MINUTE: "0",
    RATE_LIMIT_SENDER_PER_MINUTE: "0",
    TRUST_PROXY: "false",
  };
}

export type SponsorshipJobParameters = {
  url: string;
  connections: number;
  /** Unset: until the job is stopped. */
  seconds?: number;
  /** Record the nonce of each signed answer, for the record check (default true). */
  record?: boolean;
  secondsFrom?: number;
  /** Requests per second over all connections; unset: as fast as the answers come. */
  rate?: number;
};

export type SponsorshipJobs = {
  /** A load job of new operations: nonce keys no other job uses, round-robin over the senders. */
  job: (parameters: SponsorshipJobParameters) => LoadJob;
  /** The files the recorded jobs write their signed answers' nonces to. */
  okFiles: () => readonly string[];
};

export function sponsorshipJobs(parameters: { dir: string; senders: readonly string[]; apiKey: string; chainId: number; gasPrice: bigint }): SponsorshipJobs {
  const sendersFile = path.join(parameters.dir, "senders.txt");
  writeFileSync(sendersFile, parameters.senders.join("\n"));
  const okFiles: string[] = [];
  let nonceKeys = 0;
  return {
    job: ({ url, connections, seconds, record = true, secondsFrom, rate }) => {
      const base = nonceKeys;
      nonceKeys += NONCE_KEYS_PER_JOB;
      const okFile = path.join(parameters.dir, `ok-${base}.txt`);
      if (record) okFiles.push(okFile);
      return {
        url,
        path: RPC_PATH,
        connections,
        ...(seconds !== undefined ? { seconds } : {}),
        headers: { "content-type": "application/json", "x-api-key": parameters.apiKey },
        expected: { status: 200, bodyIncludes: '"result"' },
        ...(record ? { okFile } : {}),
        ...(secondsFrom !== undefined ? { secondsFrom } : {}),
        ...(rate !== undefined ? { rate } : {}),
        bodies: {
          kind: "sponsorship",
          sendersFile,
          nonceKeyBase: String(base),
          entryPoint: ENTRY_POINT_V07,
          chainId: parameters.chainId,
          maxFeePerGas: toHex(parameters.gasPrice * 2n),
          maxPriorityFeePerGas: toHex(parameters.gasPrice),
        },
      };
    },
    okFiles: () => okFiles,
  };
}

export type RecordCheck = {
  /** Signed answers (nonces in the ok files) whose hold and signed operation are on record. */
  answeredOnRecord: number;
  /** Signed operations on record, for any request. */
  onRecord: number;
};

/**
 * Every signed answer must have its hold and signed operation on record, found by the nonce it was asked for. The
 * generator stops with requests in flight, which the server may have committed without the answer being read: the
 * caller compares `onRecord` with the signed answers and the requests in flight at its stops.
 */
export async function checkSignedAnswersOnRecord(db: Database, okFiles: readonly string[]): Promise<RecordCheck> {
  const { rows } = await db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM sponsored_operations");
  let answeredOnRecord = 0;
  for (const file of okFiles) {
    const nonces = readFileSync(file, "utf8").split("\n").filter(Boolean);
    for (let i = 0; i < nonces.length; i += 50_000) {
      const { rows: found } = await db.query<{ n: bigint }>(
        `SELECT count(DISTINCT h.nonce)::bigint AS n FROM holds h JOIN sponsored_operations so ON so.hold_id = h.id
          WHERE h.nonce = ANY($1::text[]) AND h.id NOT LIKE '${SEEDED_HOLD_PREFIX}%'`,
        [nonces.slice(i, i + 50_000)],
      );
      answeredOnRecord += Number(found[0]!.n);
    }
  }
  return { answeredOnRecord, onRecord: Number(rows[0]!.n) };
}
