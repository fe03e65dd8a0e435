import type { PublicClient, TransactionReceipt } from "viem";
import { hasCode } from "../chain/code.js";
import { isTransportFailure, unknownOnTransportFailure } from "../chain/rpc-errors.js";
import { permit2NonceUsed } from "../permit2/chain-state.js";
import { proxyOf } from "../permit2/checks.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { SettlementRow } from "../store/schema.js";
import type { ChainVerdict } from "./chain-verdict.js";
import { findPermit2FrontRunner } from "./permit2-front-run.js";
import { failureIsPayersDoing, permit2PaymentLogOf, type ExpectedTransfer } from "./receipt.js";

/**
 * The verdict on a Permit2 row's receipt (ARCHITECTURE.md §1.2, *Verdict*): paid by the
 * Transfer(owner → payTo, value) of the proxy call in our transaction (receipt.ts
 * permit2PaymentLogOf), with the nonce's bit set at that block; else, for `exact`, paid by a
 * front-runner that sent the same permit to the exact proxy itself (anyone may: it checks no
 * caller); else failed — with the authorization unused (reclaimable: the engine may settle it again
 * alone, as for EIP-3009) when the nonce's bit is still clear.
 */
export async function permit2Verdict(
  client: PublicClient,
  row: SettlementRow,
  receipt: TransactionReceipt,
  expected: ExpectedTransfer,
  cost: { gasUsed: bigint; gasCostWei: bigint },
): Promise<ChainVerdict> {
  const proxy = proxyOf(row.scheme === "upto" ? "upto" : "exact");
  const nonce = BigInt(row.nonce);
  if (permit2PaymentLogOf(receipt, expected, proxy)) {
    // At the receipt's block: a lagging node's "latest" could be older than the receipt. A node that
    // no longer keeps that block's state (a pruned one, for an old row) is asked at "latest": a
    // Permit2 nonce bit, once set, is never cleared.
    const used = await unknownOnTransportFailure(
      permit2NonceUsed(client, expected.from, nonce, receipt.blockNumber).catch((error: unknown) => {
        if (isTransportFailure(error)) throw error;
        return permit2NonceUsed(client, expected.from, nonce);
      }),
    );
    if (used === undefined) return { kind: "unknown" };
    if (used) return { kind: "paid", txHash: receipt.transactionHash, blockNumber: receipt.blockNumber, ...cost };
  }
  if (row.scheme !== "upto") {
    // A fault while searching is "not known yet": the row stays unfinished and is judged again
    // (thrown, it would reach the identical retry that reconciles the row as a 500).
    const frontRun = await findPermit2FrontRunner(client, expected, nonce, receipt.blockNumber);
    if (frontRun.kind === "unknown") return { kind: "unknown" };
    if (frontRun.kind === "found") return { kind: "paid", txHash: frontRun.txHash, blockNumber: frontRun.blockNumber, ...cost };
  }
  const [used, payerHadCode] = await Promise.all([
    unknownOnTransportFailure(permit2NonceUsed(client, expected.from, nonce)),
    unknownOnTransportFailure(hasCode(client, expected.from)),
  ]);
  if (used === undefined || payerHadCode === undefined) return { kind: "unknown" };
  const reverted = receipt.status !== "success";
  const reason = reverted ? (row.scheme === "upto" ? ReasonCode.uptoTransactionFailed : ReasonCode.transactionFailed) : ReasonCode.transferEventMismatch;
  const message = reverted
    ? "the settlement transaction reverted"
    : "the transaction succeeded but logged no Transfer(owner → payTo, value) from the token right before the proxy's Settled: nothing was paid";
  const why = used ? `${message}; the Permit2 nonce is used on chain without paying payTo, so it cannot be settled again` : message;
  return { kind: "failed", reason, message: why, gasCostWei: cost.gasCostWei, authorizationUnused: !used, payerHadCode, payersDoing: failureIsPayersDoing(row, receipt, { authorizationUsed: used }) };
}
