import { sql, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";

/**
 * The settlement state machine, in one place: the statuses, which move leads where, and the sets
 * every query and check is derived from. Every status write goes through the repository, which
 * only updates a row whose current status is an allowed predecessor (a guarded UPDATE), so two
 * workers racing on one row cannot both move it, and a confirmed row never changes.
 *
 *              sign + persist        broadcast           receipt pays
 *   claimed ─────────────────► signed ─────────► submitted ─────────► confirmed
 *      │  ▲                      │                  │
 *      │  └── re-claim ──┐       │ node refuses     │ receipt does not pay
 *      ▼                 │       ▼                  ▼
 *    failed ◄────────────┴──── failed ◄─────────── failed
 *
 * A failed row is re-claimed (claimed, attempt + 1) only while its authorization is unused: it
 * failed before anything was broadcast, or the chain said after its receipt that nobody used it
 * (see isReclaimable). ARCHITECTURE.md draws the same machine with every trigger.
 */
export const settlementStatuses = ["claimed", "signed", "submitted", "confirmed", "failed"] as const;
export type SettlementStatus = (typeof settlementStatuses)[number];

export const allowedPredecessors: Readonly<Record<SettlementStatus, readonly SettlementStatus[]>> = {
  claimed: ["failed"], // re-claim: only a reclaimable row (isReclaimable / reclaimableWhere)
  signed: ["claimed"],
  submitted: ["signed"],
  confirmed: ["claimed", "signed", "submitted"],
  failed: ["claimed", "signed", "submitted"],
};

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
