import { sql, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";

/**
 * The settlement state machine, in one place: the statuses, every move between them, and the sets
 * every query and check is derived from. Every status write goes through the repository, which
 * only updates a row whose current status is an allowed predecessor (a guarded UPDATE), so two
 * workers racing on one row cannot both move it, and a confirmed row never changes.
 *
 *                sign + persist           broadcast                receipt pays
 *   claimed ──────────────────► signed ─────────────► submitted ──────────────► confirmed
 *     │  ▲                        │  │                  │  ▲ │
 *     │  │ re-claim               │  └── receipt pays ──┼──┼─┼────────────────► confirmed
 *     │  │ (reclaimable only)     │ node refuses,       │  └─┘ fee bump: same status, new hash
 *     ▼  │                        ▼ receipt does not pay ▼ receipt does not pay
 *   failed ◄───────────────────  failed ◄────────────── failed
 *
 * Every transition (a test checks this list against allowedPredecessors):
 *   claimed   → signed     sign + persist: nonce, signed bytes and hash in the row before broadcast (tx-nonces.ts)
 *   claimed   → failed     prepare refused it, or the claim was given up (failClaim: from claimed only)
 *   signed    → submitted  the node accepted the broadcast (markBroadcastMany)
 *   signed    → confirmed  its receipt pays (the broadcast answer was lost; advance found the receipt)
 *   signed    → failed     the node refused it (refuseSignedTransaction: from signed only), or its receipt does not pay
 *   submitted → confirmed  its receipt pays
 *   submitted → failed     its receipt does not pay
 *   failed    → claimed    re-claim, attempt + 1, only while reclaimable (isReclaimable / reclaimableWhere)
 *
 * Not a status change: a fee bump signs the same nonce again with higher fees and moves a signed
 * or submitted row (every row of its transaction) to the new hash, keeping its status
 * (recordReplacement, guarded by transactionStatuses).
 *
 * A failed row is reclaimable only while its authorization is unused: it failed before anything was
 * broadcast, or the chain said after its receipt that nobody used it. ARCHITECTURE.md §2 draws the
 * same machine.
 */
export const settlementStatuses = ["claimed", "signed", "submitted", "confirmed", "failed"] as const;
export type SettlementStatus = (typeof settlementStatuses)[number];

export const allowedPredecessors: Readonly<Record<SettlementStatus, readonly SettlementStatus[]>> = {
  claimed: ["failed"], // re-claim: only a reclaimable row (isReclaimable / reclaimableWhere)
  signed: ["claimed"],
  submitted: ["signed"],
  confirmed: ["signed", "submitted"],
  failed: ["claimed", "signed", "submitted"],
};

/** Narrower guards than allowedPredecessors, for the moves that must not happen from every predecessor. */
/** A claim given up (a fault before signing, the watcher after the lease): never a row signed meanwhile, whose transaction may pay. */
export const claimReleasableFrom = ["claimed"] as const satisfies readonly SettlementStatus[];
/** A receipt that pays confirms only a row that has a transaction. */
export const confirmableByReceiptFrom = ["signed", "submitted"] as const satisfies readonly SettlementStatus[];
/** The node refused the signed bytes: only before it ever accepted them (a submitted row's transaction may be mined). */
export const refusableFrom = ["signed"] as const satisfies readonly SettlementStatus[];

/** Not final yet: the watcher finishes these when nobody waits on them any more. */
export const unfinishedStatuses = ["claimed", "signed", "submitted"] as const satisfies readonly SettlementStatus[];
/** A transaction exists for the row (persisted before broadcast): it may be on chain. */
export const transactionStatuses = ["signed", "submitted"] as const satisfies readonly SettlementStatus[];
export const finalStatuses = ["confirmed", "failed"] as const satisfies readonly SettlementStatus[];

export function isFinal(status: SettlementStatus): boolean {
  return (finalStatuses as readonly SettlementStatus[]).includes(status);
}

/** The columns the reclaim rule reads, as a row (TypeScript) or as columns (SQL). */
interface ReclaimFields<T> {
  status: T;
  broadcastAt: T;
  authorizationUnused: T;
}

/**
 * A failed row whose authorization is unused may be claimed again: it failed before anything
 * reached the chain, or the chain said after its receipt that nobody used the authorization.
 */
export function isReclaimable(row: { status: SettlementStatus; broadcastAt: Date | null; authorizationUnused: boolean }): boolean {
  return row.status === "failed" && (row.broadcastAt === null || row.authorizationUnused);
}

/** isReclaimable as a SQL condition on the settlements table's columns (one rule, two spellings, tested to agree). */
export function reclaimableWhere(columns: ReclaimFields<PgColumn>): SQL {
  return sql`(${columns.status} = 'failed' and (${columns.broadcastAt} is null or ${columns.authorizationUnused}))`;
}

/** `status in (…)` for a list of statuses, for raw SQL. */
export function statusIn(column: PgColumn | SQL, statuses: readonly SettlementStatus[]): SQL {
  return sql`${column} in (${sql.join(
    statuses.map((status) => sql`${status}`),
    sql`, `,
  )})`;
}
