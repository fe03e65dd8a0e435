import { ReasonCode } from "../protocol/reason-codes.js";
import type { SettlementRow } from "../store/schema.js";

/** What a /settle call decided, before it is rendered in the caller's version. */
export interface SettleOutcome {
  success: boolean;
  reason?: ReasonCode;
  message?: string;
  /** The tx hash once one exists (ours, or the front-runner's that paid); "" when none. */
  transaction: string;
  /** What was settled, in the asset's atomic units (a decimal string): on success only. */
  amountAtomic?: string;
  settlementId?: string;
}

export const succeeded = (row: SettlementRow): SettleOutcome => ({
  success: true,
  transaction: row.settledTxHash ?? row.txHash ?? "",
  // The receipt proved a Transfer of exactly this value to payTo (receipt.ts); an upto charge of 0
  // has no receipt and no transaction ("" here): nothing was sent, and 0 is what was settled.
  amountAtomic: row.valueAtomic,
  settlementId: row.id,
});

export const failed = (reason: ReasonCode, message: string, row?: SettlementRow): SettleOutcome => ({
  success: false,
  reason,
  message,
  transaction: row?.settledTxHash ?? row?.txHash ?? "",
  settlementId: row?.id,
});

export const pending = (row: SettlementRow): SettleOutcome =>
  failed(ReasonCode.settlementPending, "the transaction is broadcast but not yet confirmed; settle the identical payment again to get its outcome", row);

export const duplicate = (row: SettlementRow): SettleOutcome =>
  failed(ReasonCode.duplicateSettlement, "this authorization is already settled or being settled by another request", row);

/** The outcome a finished row stands for, for a caller that may not claim its success. */
export function outcomeOfFinalRow(row: SettlementRow): SettleOutcome {
  if (row.status === "confirmed") return duplicate(row);
  return failed(row.errorReason ?? ReasonCode.unexpectedSettleError, row.errorMessage ?? "settlement failed", row);
}
