import type { SettlementStatus } from "../store/schema.js";

/**
 * The settlement state machine, in one place. Every status write goes through the repository,
 * which only updates a row whose current status is an allowed predecessor (a guarded UPDATE), so
 * two workers racing on one row cannot both move it, and a confirmed row never changes.
 */
export const allowedPredecessors: Readonly<Record<SettlementStatus, readonly SettlementStatus[]>> = {
  claimed: ["failed"], // re-claim: only a failed row whose authorization is unused (isReclaimable, checked in SQL)
  signed: ["claimed"],
  submitted: ["signed"],
  confirmed: ["claimed", "signed", "submitted"],
  failed: ["claimed", "signed", "submitted"],
};

export const unfinishedStatuses: readonly SettlementStatus[] = ["claimed", "signed", "submitted"];

export function isFinal(status: SettlementStatus): boolean {
  return status === "confirmed" || status === "failed";
}
