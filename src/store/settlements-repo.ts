import { and, desc, eq, getTableColumns, inArray, sql } from "drizzle-orm";
import type { Hex } from "viem";
import type { ReasonCode } from "../protocol/reason-codes.js";
import type { Scheme, TransferMethod } from "../protocol/types.js";
import {
  allowedPredecessors,
  claimReleasableFrom,
  confirmableByReceiptFrom,
  isReclaimable,
  reclaimableWhere,
  statusIn,
  transactionStatuses,
  unfinishedStatuses,
} from "./settlement-states.js";
import { PermitLaneTakenError } from "../errors.js";
import { recentPayerFailure } from "./payer-failures-repo.js";
import type { Database } from "./db.js";
import { storedErrorMessage } from "./error-message.js";
import { permitLaneIndex, settlements, type SettlementRow, type SettlementStatus } from "./schema.js";
import { settlementChangedChannel } from "./notifications.js";

/** Whose funds a settlement reserves against: its (chain, token, payer), the key of the payer's lock. */
export function fundsLockKey(row: Pick<SettlementRow, "chainId" | "asset" | "payer">): string {
  return `${row.chainId}:${row.asset.toLowerCase()}:${row.payer.toLowerCase()}`;
}

/** What a payer's unfinished settlements of one (chain, token) have reserved of its funds (reserveFunds). */
export interface ReservedFunds {
  count: number;
  /** Their total value (charges for upto), atomic units of the token. */
  valueAtomic: bigint;
  /** The part of it that moves through Permit2: what they take of the payer's allowance to Permit2. */
  permit2ValueAtomic: bigint;
  /**
   * One of the payer's own calls failed on chain within `oneAtATimeWindowMs` (payer_failed_calls):
   * it may have one settlement reserved at a time. Read under the payer's lock, so a record
   * committed before a row went final is seen by whoever reserves after it.
   */
  oneAtATime: boolean;
}

/** What a settlement row is unique on: the nonce in the namespace the chain keeps it in (schema.ts). */
export interface AuthorizationKey {
  chainId: number;
  /** The token (EIP-3009) or the Permit2 contract (Permit2). */
  nonceContract: string;
  payer: string;
  nonce: string;
}

export interface NewSettlement {
  chainId: number;
  /** The token paid. */
  asset: string;
  payer: string;
  nonce: string;
  /** Default: the asset (EIP-3009's nonce space). */
  nonceContract?: string;
  /** Default "exact". */
  scheme?: Scheme;
  /** Default "eip3009". */
  transferMethod?: TransferMethod;
  /** What the payer signed for; default: valueAtomic. */
  permittedAtomic?: bigint;
  payTo: string;
  valueAtomic: bigint;
  validAfterSeconds: bigint;
  validBeforeSeconds: bigint;
  authorizationDigest: Hex;
  signature: Hex;
  x402Version: number;
  network: string;
  leaseMs: number;
  apiKeyId?: string;
  /**
   * This attempt may submit the payer's EIP-2612 permit: the claim takes the (chain, asset, payer)
   * permit lane, or throws PermitLaneTakenError while another unfinished row holds it. Default false.
   */
  eip2612Permit?: boolean;
}

/** A unique violation of the permit lane index (schema.ts), found in a driver error's cause chain. */
function isPermitLaneTaken(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth += 1) {
    const { code, constraint } = current as { code?: unknown; constraint?: unknown };
    if (code === "23505" && constraint === permitLaneIndex) return true;
  }
  return false;
}

/** The errorMessage of an update, redacted and bounded; nothing when the update sets none. */
function redactedMessageOf(fields: { errorMessage?: string | null }): { errorMessage?: string | null } {
  return typeof fields.errorMessage === "string" ? { errorMessage: storedErrorMessage(fields.errorMessage) } : {};
}

/** Lowercase everything that is part of the unique key, so "0xAbC" and "0xabc" are one payment. */
export function normalizeKey(key: AuthorizationKey): AuthorizationKey {
  return { chainId: key.chainId, nonceContract: key.nonceContract.toLowerCase(), payer: key.payer.toLowerCase(), nonce: key.nonce.toLowerCase() };
}

/** A normalised key as one string (claimedAmong's answer); the fields' alphabets keep it unambiguous. */
export function claimedKeyText(key: AuthorizationKey): string {
  return `${key.chainId}|${key.nonceContract}|${key.payer}|${key.nonce}`;
}

/** The reclaim rule (settlement-states.ts) on this table. */
const reclaimable = reclaimableWhere(settlements);

const placeholder = sql.placeholder;

/**
 * RETURNING of a write that may end a duplicate's wait: the whole row, and a NOTIFY of its id to
 * the other instances (store/notifications.ts), sent when the statement commits — in the same
 * round trip, only for the rows it changed.
 */
const rowAndNotify = { ...getTableColumns(settlements), notified: sql<unknown>`pg_notify(${settlementChangedChannel}, ${settlements.id}::text)` };

/** The row of a rowAndNotify RETURNING. */
function rowOf(returned: (SettlementRow & { notified: unknown }) | undefined): SettlementRow | undefined {
  if (!returned) return undefined;
  const { notified: _notified, ...row } = returned;
  return row;
}

export interface SettlementsRepositoryOptions {
  /**
   * Each row written by a statement that NOTIFYs (a verdict, a released claim, a pending answer),
   * as committed: the engine's waiters in this process take it without a read.
   */
  onChange?(row: SettlementRow): void;
}

/** Which attempt of a row a write is meant for (settlements.attempt grows with every re-claim). */
export interface AttemptGuard {
  attempt?: number;
}

function attemptIs(guard: AttemptGuard) {
  return guard.attempt === undefined ? undefined : eq(settlements.attempt, guard.attempt);
}

/**
 * The statements every verify and settle runs, built once and prepared on the server: building a
 * drizzle query costs more CPU than running it (measured: findByKey 0.9 ms CPU built per call,
 * 0.23 ms prepared), and these run several times per payment.
 */
function preparedStatements(db: Database) {
  const byKey = and(
    eq(settlements.chainId, placeholder("chainId")),
    eq(settlements.nonceContract, placeholder("nonceContract")),
    eq(settlements.payer, placeholder("payer")),
    eq(settlements.nonce, placeholder("nonce")),
  );
  const leaseUntil = sql`now() + make_interval(secs => ${placeholder("leaseSeconds")}::double precision)`;
  const fresh = {
    chainId: placeholder("chainId"),
    nonceContract: placeholder("nonceContract"),
    asset: placeholder("asset"),
    payer: placeholder("payer"),
    nonce: placeholder("nonce"),
    scheme: placeholder("scheme"),
    transferMethod: placeholder("transferMethod"),
    payTo: placeholder("payTo"),
    valueAtomic: placeholder("valueAtomic"),
    permittedAtomic: placeholder("permittedAtomic"),
    validAfterSeconds: placeholder("validAfterSeconds"),
    validBeforeSeconds: placeholder("validBeforeSeconds"),
    authorizationDigest: placeholder("authorizationDigest"),
    signature: placeholder("signature"),
    x402Version: placeholder("x402Version"),
    network: placeholder("network"),
    status: "claimed" as const,
    apiKeyId: placeholder("apiKeyId"),
    eip2612Permit: placeholder("eip2612Permit"),
  };
  return {
    findByKey: db.select().from(settlements).where(byKey).limit(1).prepare("settlements_find_by_key"),
    findById: db.select().from(settlements).where(eq(settlements.id, placeholder("id"))).limit(1).prepare("settlements_find_by_id"),
    isClaimed: db
      .select({ id: settlements.id })
      .from(settlements)
      .where(and(byKey, sql`not (${reclaimable})`))
      .limit(1)
      .prepare("settlements_is_claimed"),
    // isClaimed for many keys in one round trip (verify's coalesced reads, store/claim-reads.ts):
    // the same rule, matched through the unique (chain_id, nonce_contract, payer, nonce) index.
    claimedAmong: db
      .select({ chainId: settlements.chainId, nonceContract: settlements.nonceContract, payer: settlements.payer, nonce: settlements.nonce })
      .from(settlements)
      .where(
        and(
          sql`(${settlements.chainId}, ${settlements.nonceContract}, ${settlements.payer}, ${settlements.nonce}) in (select * from unnest(${placeholder("chainIds")}::integer[], ${placeholder("nonceContracts")}::text[], ${placeholder("payers")}::text[], ${placeholder("nonces")}::text[]))`,
          sql`not (${reclaimable})`,
        ),
      )
      .prepare("settlements_claimed_among"),
    claim: db
      .insert(settlements)
      // drizzle's insert types want concrete values; placeholders are bound at execute().
      .values({ ...fresh, leaseUntil } as unknown as typeof settlements.$inferInsert)
      .onConflictDoUpdate({
        target: [settlements.chainId, settlements.nonceContract, settlements.payer, settlements.nonce],
        set: {
          ...fresh,
          leaseUntil,
          errorReason: null,
          errorMessage: null,
          txHash: null,
          rawTx: null,
          signer: null,
          txNonce: null,
          gasLimit: null,
          txSettlements: 1,
          // Everything an earlier attempt may have left: a re-claimed row starts clean.
          broadcastAt: null,
          lastBroadcastAt: null,
          replacedTxHashes: sql`'{}'::text[]`,
          feeBumps: 0,
          gasCostWei: null,
          authorizationUnused: false,
          settledTxHash: null,
          blockNumber: null,
          gasUsed: null,
          pendingAnswered: false,
          successAnswered: false,
          // A re-claim reserves its funds again, as a new claim does (engine.reserveFunds).
          fundsReserved: false,
          attempt: sql`${settlements.attempt} + 1`,
          updatedAt: sql`now()`,
        } as unknown as Partial<typeof settlements.$inferInsert>,
        setWhere: reclaimable,
      })
      .returning()
      .prepare("settlements_claim"),
    markBroadcastMany: db
      .update(settlements)
      .set({
        status: "submitted",
        broadcastAt: sql`coalesce(${settlements.broadcastAt}, now())`,
        lastBroadcastAt: sql`now()`,
        updatedAt: sql`now()`,
      })
      .where(and(sql`${settlements.id} = any(${placeholder("ids")}::uuid[])`, inArray(settlements.status, [...allowedPredecessors.submitted])))
      .returning()
      .prepare("settlements_mark_broadcast_many"),
    confirm: db
      .update(settlements)
      .set({
        status: "confirmed",
        successAnswered: sql`${settlements.successAnswered} or ${placeholder("claimSuccess")}::boolean`,
        settledTxHash: placeholder("settledTxHash"),
        blockNumber: placeholder("blockNumber"),
        gasUsed: placeholder("gasUsed"),
        gasCostWei: placeholder("gasCostWei"),
        leaseUntil: null,
        updatedAt: sql`now()`,
      } as unknown as Partial<typeof settlements.$inferInsert>)
      .where(and(eq(settlements.id, placeholder("id")), eq(settlements.attempt, placeholder("attempt")), inArray(settlements.status, [...confirmableByReceiptFrom])))
      .returning(rowAndNotify)
      .prepare("settlements_confirm"),
    takeSuccessAnswer: db
      .update(settlements)
      .set({ successAnswered: true })
      .where(and(eq(settlements.id, placeholder("id")), eq(settlements.status, "confirmed"), eq(settlements.successAnswered, false)))
      .returning({ id: settlements.id })
      .prepare("settlements_take_success_answer"),
  };
}

export class SettlementsRepository {
  private readonly statements: ReturnType<typeof preparedStatements>;

  constructor(
    private readonly db: Database,
    private readonly options: SettlementsRepositoryOptions = {},
  ) {
    this.statements = preparedStatements(db);
  }

  /** A row that a notifying write returned: handed to this process's waiters (see onChange). */
  private changed(returned: (SettlementRow & { notified: unknown }) | undefined): SettlementRow | undefined {
    const row = rowOf(returned);
    if (row) this.options.onChange?.(row);
    return row;
  }

  async findByKey(key: AuthorizationKey): Promise<SettlementRow | undefined> {
    const [row] = await this.statements.findByKey.execute({ ...normalizeKey(key) });
    return row;
  }

  async findById(id: string): Promise<SettlementRow | undefined> {
    const [row] = await this.statements.findById.execute({ id });
    return row;
  }

  /** How many of this payer's settlements on (chain, asset) are unfinished, counted up to `upTo`. */
  async unfinishedForPayer(key: { chainId: number; asset: string; payer: string }, upTo: number): Promise<number> {
    const { chainId } = key;
    const asset = key.asset.toLowerCase();
    const payer = key.payer.toLowerCase();
    const result = await this.db.execute<{ n: number }>(sql`
      select count(*)::int as n from (
        select 1 from settlements
        where chain_id = ${chainId} and asset = ${asset} and payer = ${payer}
          and ${statusIn(settlements.status, unfinishedStatuses)}
        limit ${upTo}) as unfinished`);
    return result.rows[0]?.n ?? 0;
  }

  /**
   * Reserves `row`'s value against its payer's funds if `fits` says the payer's unfinished reserved
   * settlements of the same (chain, token), whatever their age or instance, leave room for it: in
   * one short transaction under that payer's advisory lock (so two reservations never both see the
   * room one of them takes), the others are summed (settlements_funds_reserved) and, when they fit,
   * the row is marked. `fits` must not do I/O: it runs inside the lock. With `countFinalSince` (the
   * `at` of an earlier call, before the funds `fits` compares with were read), reserved rows that
   * went final since are counted too: they may have landed after that read, so the funds read may
   * not show them spent yet. With `oneAtATimeWindowMs`, whether the payer is down to one at a time
   * (ReservedFunds.oneAtATime) is read in the same statement. Answers whether the row is reserved,
   * what the others hold (with one of them to wait on when it is not), and the transaction's time
   * (`at`, Postgres' clock).
   */
  async reserveFunds(
    row: Pick<SettlementRow, "id" | "chainId" | "asset" | "payer" | "attempt">,
    fits: (reserved: ReservedFunds) => boolean,
    options: { countFinalSince?: Date; oneAtATimeWindowMs?: number } = {},
  ): Promise<{ reserved: boolean; others: ReservedFunds; waitOn: SettlementRow | undefined; at: Date }> {
    const asset = row.asset.toLowerCase();
    const payer = row.payer.toLowerCase();
    return this.db.transaction(async (tx) => {
      // now() is the transaction's start, before the lock is granted: an earlier `at` counts more.
      const lockAndTime = await tx.execute<{ at: Date | string }>(sql`select now() as at, pg_advisory_xact_lock(hashtextextended(${`funds:${fundsLockKey(row)}`}, 0))`);
      const at = new Date(lockAndTime.rows[0]!.at);
      const counted = options.countFinalSince
        ? sql`(${statusIn(settlements.status, unfinishedStatuses)} or updated_at >= ${options.countFinalSince.toISOString()}::timestamptz)`
        : statusIn(settlements.status, unfinishedStatuses);
      const othersWhere = sql`chain_id = ${row.chainId} and asset = ${asset} and payer = ${payer} and funds_reserved
        and ${counted} and id <> ${row.id}::uuid`;
      const unfinishedOthers = sql`chain_id = ${row.chainId} and asset = ${asset} and payer = ${payer} and funds_reserved
        and ${statusIn(settlements.status, unfinishedStatuses)} and id <> ${row.id}::uuid`;
      const windowMs = options.oneAtATimeWindowMs ?? 0;
      const oneAtATime = windowMs > 0 ? recentPayerFailure("payer_failed_calls", row.chainId, payer, windowMs) : sql`false`;
      const result = await tx.execute<{ n: number; value: string | null; permit2_value: string | null; one_at_a_time: boolean }>(sql`
        select count(*)::int as n, sum(value_atomic::numeric)::text as value,
               sum(case when transfer_method = 'permit2' then value_atomic::numeric else 0 end)::text as permit2_value,
               ${oneAtATime} as one_at_a_time
        from settlements where ${othersWhere}`);
      const first = result.rows[0];
      const others: ReservedFunds = {
        count: first?.n ?? 0,
        valueAtomic: BigInt(first?.value ?? "0"),
        permit2ValueAtomic: BigInt(first?.permit2_value ?? "0"),
        oneAtATime: first?.one_at_a_time === true,
      };
      if (fits(others)) {
        const marked = await tx
          .update(settlements)
          .set({ fundsReserved: true })
          .where(and(eq(settlements.id, row.id), eq(settlements.attempt, row.attempt), eq(settlements.status, "claimed")))
          .returning({ id: settlements.id });
        return { reserved: marked.length > 0, others, waitOn: undefined, at };
      }
      const [waitOn] = await tx.select().from(settlements).where(unfinishedOthers).orderBy(desc(settlements.createdAt)).limit(1);
      return { reserved: false, others, waitOn, at };
    });
  }

  /** True when a live claim (or a broadcast) holds this authorization. */
  async isClaimed(key: AuthorizationKey): Promise<boolean> {
    const [row] = await this.statements.isClaimed.execute({ ...normalizeKey(key) });
    return row !== undefined;
  }

  /**
   * isClaimed for each of `keys` in one query: the keys (normalised, claimedKeyText) that a live
   * claim (or a broadcast) holds.
   */
  async claimedAmong(keys: readonly AuthorizationKey[]): Promise<Set<string>> {
    const normalized = keys.map(normalizeKey);
    const rows = await this.statements.claimedAmong.execute({
      chainIds: normalized.map((key) => key.chainId),
      nonceContracts: normalized.map((key) => key.nonceContract),
      payers: normalized.map((key) => key.payer),
      nonces: normalized.map((key) => key.nonce),
    });
    return new Set(rows.map(claimedKeyText));
  }

  /**
   * The one atomic step that decides who settles: INSERT … ON CONFLICT. Exactly one caller gets a
   * row back — the inserter, or the re-claimer of a row that failed before broadcast. With
   * `eip2612Permit`, the same statement takes the payer's permit lane: while another unfinished row
   * holds it, the insert (or the re-claim's update) violates settlements_eip2612_permit_lane, nothing
   * is written, and PermitLaneTakenError (payer_busy) is thrown — unless the holder is this payment's
   * own row (a concurrent twin claim), answered undefined like any lost claim. Concurrent claims of one lane
   * serialise on the index entry; a lane is free again once its row is final (or its claim failed).
   */
  async claim(input: NewSettlement): Promise<SettlementRow | undefined> {
    try {
      return await this.insertClaim(input);
    } catch (error) {
      if (!isPermitLaneTaken(error)) throw error;
      // The lane's holder may be this very payment: a twin claim in flight passes the ON CONFLICT
      // key (its row is not committed yet, so Postgres only notes the conflict and moves on), then
      // the lane index waits for the twin and raises. Answer that as ON CONFLICT would have: lost.
      const own = await this.findByKey({ chainId: input.chainId, nonceContract: input.nonceContract ?? input.asset, payer: input.payer, nonce: input.nonce });
      if (own && !isReclaimable(own)) return undefined;
      throw new PermitLaneTakenError(input.payer, { cause: error });
    }
  }

  private async insertClaim(input: NewSettlement): Promise<SettlementRow | undefined> {
    const [row] = await this.statements.claim.execute({
      ...normalizeKey({ chainId: input.chainId, nonceContract: input.nonceContract ?? input.asset, payer: input.payer, nonce: input.nonce }),
      asset: input.asset.toLowerCase(),
      scheme: input.scheme ?? "exact",
      transferMethod: input.transferMethod ?? "eip3009",
      payTo: input.payTo.toLowerCase(),
      valueAtomic: input.valueAtomic.toString(),
      permittedAtomic: (input.permittedAtomic ?? input.valueAtomic).toString(),
      validAfterSeconds: input.validAfterSeconds.toString(),
      validBeforeSeconds: input.validBeforeSeconds.toString(),
      authorizationDigest: input.authorizationDigest,
      signature: input.signature,
      x402Version: input.x402Version,
      network: input.network,
      apiKeyId: input.apiKeyId ?? null,
      eip2612Permit: input.eip2612Permit ?? false,
      leaseSeconds: input.leaseMs / 1000,
    });
    return row;
  }

  /**
   * Moves a row to `to` only from an allowed predecessor, and — with `guard.attempt` — only while it
   * is still that attempt (a worker holding an older copy must not overwrite a re-claimed row's next
   * attempt); returns the updated row, or undefined when another worker moved it first (the caller
   * then re-reads and follows that outcome).
   */
  async transition(id: string, to: SettlementStatus, fields: Partial<typeof settlements.$inferInsert> = {}, guard: AttemptGuard = {}): Promise<SettlementRow | undefined> {
    const [row] = await this.db
      .update(settlements)
      .set({ ...fields, ...redactedMessageOf(fields), status: to, updatedAt: sql`now()` })
      .where(and(eq(settlements.id, id), inArray(settlements.status, [...allowedPredecessors[to]]), attemptIs(guard)))
      .returning(rowAndNotify);
    return this.changed(row);
  }

  /**
   * The chain's verdict "paid" (guarded like transition()). With `claimSuccess` the one success
   * answer is taken in the same UPDATE, so no duplicate request can take it in between.
   */
  async confirm(
    id: string,
    fields: { attempt: number; settledTxHash: string; blockNumber: number; gasUsed: number; gasCostWei: string; claimSuccess: boolean },
  ): Promise<SettlementRow | undefined> {
    const [row] = await this.statements.confirm.execute({ id, ...fields });
    return this.changed(row);
  }

  /**
   * Fails a row only while it is still `claimed` (nothing signed for it). A worker that gave up on a
   * claim — the watcher after the lease, or a request after a fault — must not overwrite a row that
   * the signer locked and signed meanwhile: that transaction may pay.
   */
  async failClaim(id: string, fields: { errorReason: ReasonCode; errorMessage: string }, guard: AttemptGuard = {}): Promise<SettlementRow | undefined> {
    const [row] = await this.db
      .update(settlements)
      .set({ ...fields, errorMessage: storedErrorMessage(fields.errorMessage), status: "failed", leaseUntil: null, updatedAt: sql`now()` })
      .where(and(eq(settlements.id, id), inArray(settlements.status, [...claimReleasableFrom]), attemptIs(guard)))
      .returning(rowAndNotify);
    return this.changed(row);
  }

  /**
   * One row's stored bytes were sent again and accepted: it is submitted — only while it still is
   * that attempt holding that transaction (a worker with an older copy must not move a re-claimed
   * row, or one whose transaction was replaced meanwhile).
   */
  async markBroadcast(row: Pick<SettlementRow, "id" | "attempt" | "txHash">): Promise<SettlementRow | undefined> {
    const [updated] = await this.db
      .update(settlements)
      .set({ status: "submitted", broadcastAt: sql`coalesce(${settlements.broadcastAt}, now())`, lastBroadcastAt: sql`now()`, updatedAt: sql`now()` })
      .where(
        and(
          eq(settlements.id, row.id),
          eq(settlements.attempt, row.attempt),
          eq(settlements.txHash, row.txHash ?? ""),
          inArray(settlements.status, [...allowedPredecessors.submitted]),
        ),
      )
      .returning();
    return updated;
  }

  /** Marks every row of one broadcast transaction submitted, in one statement. */
  async markBroadcastMany(ids: readonly string[]): Promise<SettlementRow[]> {
    return this.statements.markBroadcastMany.execute({ ids: [...ids] });
  }

  /**
   * Persists a fee-bumped replacement (same tx nonce) before it is broadcast; guarded on the
   * current hash so two workers cannot both replace one transaction.
   */
  async recordReplacement(row: SettlementRow, replacement: { txHash: string; rawTx: string }): Promise<SettlementRow | undefined> {
    const updated = await this.db
      .update(settlements)
      .set({
        txHash: replacement.txHash,
        rawTx: replacement.rawTx,
        replacedTxHashes: sql`array_append(${settlements.replacedTxHashes}, ${row.txHash})`,
        feeBumps: sql`${settlements.feeBumps} + 1`,
        lastBroadcastAt: sql`now()`,
        updatedAt: sql`now()`,
      })
      // Every row of the transaction (a batch shares one) moves to the replacement together.
      .where(and(eq(settlements.txHash, row.txHash!), inArray(settlements.status, [...transactionStatuses])))
      .returning();
    return updated.find((entry) => entry.id === row.id) ?? updated[0];
  }

  async touchBroadcast(id: string): Promise<void> {
    await this.db.update(settlements).set({ lastBroadcastAt: sql`now()` }).where(eq(settlements.id, id));
  }

  /** Records that settlement_pending went out for this attempt, and hands the row to the watcher. */
  async markPendingAnswered(row: Pick<SettlementRow, "id" | "attempt">): Promise<void> {
    const [updated] = await this.db
      .update(settlements)
      .set({ pendingAnswered: true, leaseUntil: sql`now()` })
      .where(and(eq(settlements.id, row.id), eq(settlements.attempt, row.attempt)))
      .returning(rowAndNotify);
    this.changed(updated);
  }

  /** One payment, one success: exactly one caller may answer success:true for a confirmed row. */
  async takeSuccessAnswer(id: string): Promise<boolean> {
    const rows = await this.statements.takeSuccessAnswer.execute({ id });
    return rows.length === 1;
  }

  /** Leases up to `limit` unfinished rows whose lease expired, for the watcher; SKIP LOCKED keeps instances apart. */
  async leaseUnfinished(limit: number, leaseMs: number, olderThanMs: number): Promise<SettlementRow[]> {
    const result = await this.db.execute<{ id: string }>(sql`
      update settlements set lease_until = now() + make_interval(secs => ${leaseMs / 1000})
      where id in (
        select id from settlements
        where ${statusIn(settlements.status, unfinishedStatuses)}
          and (lease_until is null or lease_until < now())
          and updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
        order by updated_at
        limit ${limit}
        for update skip locked)
      returning id`);
    const ids = result.rows.map((row) => row.id);
    if (ids.length === 0) return [];
    return this.db.select().from(settlements).where(inArray(settlements.id, ids));
  }

  async countUnfinishedByStatus(): Promise<Partial<Record<SettlementStatus, number>>> {
    const result = await this.db.execute<{ status: SettlementStatus; count: string }>(
      sql`select status, count(*) as count from settlements where ${statusIn(settlements.status, unfinishedStatuses)} group by status`,
    );
    return Object.fromEntries(result.rows.map((row) => [row.status, Number(row.count)]));
  }

  async releaseLease(id: string): Promise<void> {
    await this.db.update(settlements).set({ leaseUntil: null }).where(eq(settlements.id, id));
  }
}
