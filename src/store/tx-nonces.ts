import { and, asc, eq, inArray, sql, TransactionRollbackError } from "drizzle-orm";
import type { Hex } from "viem";
import type { ReasonCode } from "../protocol/reason-codes.js";
import { allowedPredecessors, refusableFrom } from "./settlement-states.js";
import type { Database } from "./db.js";
import { storedErrorMessage } from "./error-message.js";
import { releasedNonces, settlements, signerNonces, type SettlementRow } from "./schema.js";
import { settlementChangedChannel } from "./notifications.js";

type Transaction = Parameters<Parameters<Database["transaction"]>[0]>[0];

export interface SignedTransaction {
  rawTx: Hex;
  txHash: Hex;
}

export interface AllocateInput {
  chainId: number;
  signer: string;
  /** The node's pending nonce, read just before: the floor, in case the key was used elsewhere. */
  chainPendingNonce: number;
  /** The claimed rows this one transaction settles (one, or a batch). */
  settlementIds: readonly string[];
  /**
   * Signs the transaction at the allocated nonce for the rows still claimed (those are locked);
   * runs while the signer's row is locked.
   */
  sign: (txNonce: number, claimedIds: readonly string[]) => Promise<SignedSettlementTransaction>;
}

export interface SignedSettlementTransaction extends SignedTransaction {
  gasLimit: bigint;
}

/**
 * Takes a tx nonce for a signer, signs, and persists the signed transaction on the settlement rows,
 * all in one Postgres transaction under the signer's row lock. Instances sharing the database
 * therefore never hand out one nonce twice, and a crash leaves either nothing or rows holding
 * the raw transaction (which the watcher can rebroadcast) — never a nonce in use without a record.
 * A nonce released after a definite rejection is reused first, so no gap stays open.
 * Rows that are no longer `claimed` (the watcher gave up on them) are left out of the transaction;
 * the rows returned are exactly the ones the signed transaction settles.
 */
export async function allocateNonceAndPersistSigned(db: Database, input: AllocateInput): Promise<SettlementRow[]> {
  const signer = input.signer.toLowerCase();
  // Round trips matter here: everything between the lock and the commit serialises the signer.
  return db.transaction(async (tx) => {
    const batch = input.settlementIds.length > 1;
    // A batch must know before signing which rows it may still carry; one row is simply checked
    // by the guarded UPDATE below (and the transaction rolled back if the claim was taken away).
    const claimedIds = batch ? await lockClaimedRows(tx, input.settlementIds) : input.settlementIds;
    if (claimedIds.length === 0) return [];
    const txNonce = await takeTxNonce(tx, input.chainId, signer, input.chainPendingNonce);
    const signed = await input.sign(txNonce, claimedIds);
    const rows = await tx
      .update(settlements)
      .set({
        status: "signed",
        txHash: signed.txHash,
        rawTx: signed.rawTx,
        signer,
        txNonce,
        gasLimit: Number(signed.gasLimit),
        txSettlements: claimedIds.length,
        updatedAt: sql`now()`,
      })
      .where(and(inArray(settlements.id, [...claimedIds]), inArray(settlements.status, [...allowedPredecessors.signed])))
      .returning();
    if (!batch && rows.length === 0) tx.rollback(); // the claim was taken away: no transaction, the nonce goes back
    // Locked rows: all of them move, or the signed transaction must not exist.
    if (rows.length !== claimedIds.length) throw new Error(`persisted ${rows.length} of ${claimedIds.length} locked settlement rows`);
    return claimedIds.map((id) => rows.find((row) => row.id === id)!);
  }).catch((error: unknown) => {
    if (error instanceof TransactionRollbackError) return [];
    throw error;
  });
}

async function lockClaimedRows(tx: Transaction, ids: readonly string[]): Promise<string[]> {
  const claimed = await tx
    .select({ id: settlements.id })
    .from(settlements)
    .where(and(inArray(settlements.id, [...ids]), inArray(settlements.status, [...allowedPredecessors.signed])))
    .orderBy(asc(settlements.id))
    .for("update");
  return ids.filter((id) => claimed.some((row) => row.id === id));
}

/**
 * Two statements under the signer's row lock: lock (creating the counter at the chain's pending
 * nonce the first time), then take the lowest handed-back nonce at or above the chain's pending
 * nonce — or, with none, the counter's next one — dropping handed-back nonces the chain has passed.
 */
async function takeTxNonce(tx: Transaction, chainId: number, signer: string, chainPendingNonce: number): Promise<number> {
  await tx.execute(sql`
    insert into signer_nonces (chain_id, address, next_nonce) values (${chainId}, ${signer}, ${chainPendingNonce})
    on conflict (chain_id, address) do update set next_nonce = signer_nonces.next_nonce
    returning next_nonce`);
  const taken = await tx.execute<{ nonce: string }>(sql`
    with dropped as (
      delete from released_nonces where chain_id = ${chainId} and address = ${signer} and nonce < ${chainPendingNonce}
    ), hole as (
      delete from released_nonces
      where chain_id = ${chainId} and address = ${signer} and nonce = (
        select min(r.nonce) from released_nonces r, signer_nonces s
        where r.chain_id = ${chainId} and r.address = ${signer} and r.nonce >= ${chainPendingNonce}
          and s.chain_id = r.chain_id and s.address = r.address and r.nonce < s.next_nonce)
      returning nonce
    ), bumped as (
      update signer_nonces set next_nonce = greatest(next_nonce, ${chainPendingNonce}) + 1, updated_at = now()
      where chain_id = ${chainId} and address = ${signer} and not exists (select 1 from hole)
      returning next_nonce - 1 as nonce
    )
    select nonce from hole union all select nonce from bumped`);
  if (taken.rows.length !== 1) throw new Error(`expected one tx nonce for ${signer} on chain ${chainId}, got ${taken.rows.length}`);
  return Number(taken.rows[0]!.nonce);
}

/**
 * Takes (deletes) handed-back nonces that nobody reused for `olderThanMs`, so the caller can fill
 * them with a 0-value self-transfer: otherwise every later transaction of that signer waits
 * behind the hole forever (ARCHITECTURE.md pitfall 2). Taken under the signer's row lock, like allocation, so a
 * hole is either reused by a settlement or filled here, never both.
 */
export async function takeStaleReleasedNonces(
  db: Database,
  input: { chainId: number; signer: string; olderThanMs: number; limit: number },
): Promise<number[]> {
  const signer = input.signer.toLowerCase();
  return db.transaction(async (tx) => {
    const [counter] = await tx
      .select()
      .from(signerNonces)
      .where(and(eq(signerNonces.chainId, input.chainId), eq(signerNonces.address, signer)))
      .for("update");
    if (!counter) return [];
    // The lowest `limit` stale holes only: the rest stay handed back for the next pass (deleting
    // them all and filling only some would lose the others for good).
    const taken = await tx.execute<{ nonce: string }>(sql`
      delete from released_nonces
      where chain_id = ${input.chainId} and address = ${signer} and nonce in (
        select nonce from released_nonces
        where chain_id = ${input.chainId} and address = ${signer}
          and created_at < now() - make_interval(secs => ${input.olderThanMs / 1000})
          and nonce < ${counter.nextNonce}
        order by nonce
        limit ${input.limit})
      returning nonce`);
    return taken.rows.map((row) => Number(row.nonce)).sort((a, b) => a - b);
  });
}

/** Puts a nonce back for reuse when filling it failed. */
export async function returnReleasedNonce(db: Database, input: { chainId: number; signer: string; txNonce: number }): Promise<void> {
  await db.insert(releasedNonces).values({ chainId: input.chainId, address: input.signer.toLowerCase(), nonce: input.txNonce }).onConflictDoNothing();
}

/**
 * Hands a nonce back after the node definitely refused the transaction (nothing is in its pool).
 * The last nonce handed out is simply un-taken; an earlier one is kept for reuse, so the next
 * settlement fills the hole instead of queuing behind it forever.
 */
export async function releaseNonce(db: Database, input: { chainId: number; signer: string; txNonce: number }): Promise<void> {
  await db.transaction((tx) => releaseNonceIn(tx, input));
}

/**
 * The node refused a signed transaction: every row still holding it fails and (unless the nonce was
 * consumed by something else) its nonce goes back — in ONE Postgres transaction, and only by the
 * first worker to get there: never a nonce handed back while a row still holds the signed bytes (a
 * rebroadcast would then pay a row marked failed), never rows failed with the nonce lost, never a
 * nonce handed back twice. Returns the rows (id, attempt) it failed: none when another worker got there
 * first, or the transaction was accepted meanwhile.
 */
export async function refuseSignedTransaction(
  db: Database,
  input: { chainId: number; signer: string; txNonce: number; txHash: string; releaseNonce: boolean; errorReason: ReasonCode; errorMessage: string },
): Promise<Array<{ id: string; attempt: number }>> {
  return db.transaction(async (tx) => {
    const failed = await tx
      .update(settlements)
      .set({ status: "failed", errorReason: input.errorReason, errorMessage: storedErrorMessage(input.errorMessage), leaseUntil: null, updatedAt: sql`now()` })
      .where(and(eq(settlements.txHash, input.txHash), inArray(settlements.status, [...refusableFrom])))
      // Duplicates waiting on these rows (in any instance, this one included) re-read them at commit.
      .returning({ id: settlements.id, attempt: settlements.attempt, notified: sql`pg_notify(${settlementChangedChannel}, ${settlements.id}::text)` });
    if (failed.length > 0 && input.releaseNonce) await releaseNonceIn(tx, input);
    return failed.map(({ id, attempt }) => ({ id, attempt }));
  });
}

async function releaseNonceIn(tx: Transaction, input: { chainId: number; signer: string; txNonce: number }): Promise<void> {
  const signer = input.signer.toLowerCase();
  const where = and(eq(signerNonces.chainId, input.chainId), eq(signerNonces.address, signer));
  const [counter] = await tx.select().from(signerNonces).where(where).for("update");
  if (!counter) return;
  if (counter.nextNonce === input.txNonce + 1) {
    await tx.update(signerNonces).set({ nextNonce: input.txNonce, updatedAt: sql`now()` }).where(where);
  } else {
    await tx.insert(releasedNonces).values({ chainId: input.chainId, address: signer, nonce: input.txNonce }).onConflictDoNothing();
  }
}
