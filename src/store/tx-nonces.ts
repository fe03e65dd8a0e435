import { and, asc, eq, gte, inArray, lt, sql } from "drizzle-orm";
import type { Hex } from "viem";
import { allowedPredecessors } from "../settlement/transitions.js";
import type { Database } from "./db.js";
import { releasedNonces, settlements, signerNonces, type SettlementRow } from "./schema.js";

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
  return db.transaction(async (tx) => {
    await tx.insert(signerNonces).values({ chainId: input.chainId, address: signer, nextNonce: input.chainPendingNonce }).onConflictDoNothing();
    const [counter] = await tx
      .select()
      .from(signerNonces)
      .where(and(eq(signerNonces.chainId, input.chainId), eq(signerNonces.address, signer)))
      .for("update");
    if (!counter) throw new Error(`signer_nonces row for ${signer} vanished under lock`);
    // Lock the rows before signing, so the transaction holds calls only for rows we still own.
    const claimed = await tx
      .select({ id: settlements.id })
      .from(settlements)
      .where(and(inArray(settlements.id, [...input.settlementIds]), inArray(settlements.status, [...allowedPredecessors.signed])))
      .orderBy(asc(settlements.id))
      .for("update");
    if (claimed.length === 0) return [];
    const claimedIds = input.settlementIds.filter((id) => claimed.some((row) => row.id === id));
    const signerWhere = and(eq(releasedNonces.chainId, input.chainId), eq(releasedNonces.address, signer));
    // Released nonces below the chain's pending nonce were filled by someone else: drop them.
    await tx.delete(releasedNonces).where(and(signerWhere, lt(releasedNonces.nonce, input.chainPendingNonce)));
    const [hole] = await tx
      .select()
      .from(releasedNonces)
      .where(and(signerWhere, gte(releasedNonces.nonce, input.chainPendingNonce), lt(releasedNonces.nonce, counter.nextNonce)))
      .orderBy(asc(releasedNonces.nonce))
      .limit(1);
    const txNonce = hole ? hole.nonce : Math.max(counter.nextNonce, input.chainPendingNonce);
    if (hole) {
      await tx.delete(releasedNonces).where(and(signerWhere, eq(releasedNonces.nonce, hole.nonce)));
    } else {
      await tx.update(signerNonces).set({ nextNonce: txNonce + 1, updatedAt: sql`now()` }).where(and(eq(signerNonces.chainId, input.chainId), eq(signerNonces.address, signer)));
    }
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
      .where(and(inArray(settlements.id, claimedIds), inArray(settlements.status, [...allowedPredecessors.signed])))
      .returning();
    // The rows are locked: all of them move, or the signed transaction must not exist.
    if (rows.length !== claimedIds.length) throw new Error(`persisted ${rows.length} of ${claimedIds.length} locked settlement rows`);
    return claimedIds.map((id) => rows.find((row) => row.id === id)!);
  });
}

/**
 * Takes (deletes) handed-back nonces that nobody reused for `olderThanMs`, so the caller can fill
 * them with a 0-value self-transfer: otherwise every later transaction of that signer waits
 * behind the hole forever (pitfall 2). Taken under the signer's row lock, like allocation, so a
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
    const taken = await tx
      .delete(releasedNonces)
      .where(
        and(
          eq(releasedNonces.chainId, input.chainId),
          eq(releasedNonces.address, signer),
          lt(releasedNonces.createdAt, sql`now() - make_interval(secs => ${input.olderThanMs / 1000})`),
          lt(releasedNonces.nonce, counter.nextNonce),
        ),
      )
      .returning({ nonce: releasedNonces.nonce });
    return taken.map((row) => row.nonce).sort((a, b) => a - b).slice(0, input.limit);
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
  const signer = input.signer.toLowerCase();
  await db.transaction(async (tx) => {
    const where = and(eq(signerNonces.chainId, input.chainId), eq(signerNonces.address, signer));
    const [counter] = await tx.select().from(signerNonces).where(where).for("update");
    if (!counter) return;
    if (counter.nextNonce === input.txNonce + 1) {
      await tx.update(signerNonces).set({ nextNonce: input.txNonce, updatedAt: sql`now()` }).where(where);
    } else {
      await tx.insert(releasedNonces).values({ chainId: input.chainId, address: signer, nonce: input.txNonce }).onConflictDoNothing();
    }
  });
}
