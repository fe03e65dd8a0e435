import {
  TransactionReceiptNotFoundError,
  WaitForTransactionReceiptTimeoutError,
  type Address,
  type Hex,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import { isTransportFailure } from "../chain/rpc-errors.js";
import type { ReasonCode } from "../protocol/reason-codes.js";
import type { SettlementRow } from "../store/schema.js";
import { transferMethodDriver } from "../transfer-methods/driver.js";
import type { ExpectedTransfer } from "./receipt.js";

export type ChainVerdict =
  /** gasCostWei: what our own transaction cost the sponsor (also when a front-runner paid). */
  | { kind: "paid"; txHash: Hex; blockNumber: bigint; gasUsed: bigint; gasCostWei: bigint }
  /**
   * authorizationUnused: the chain (read after the receipt) says nobody used this authorization —
   * our call failed on its own (a batch neighbour burnt the gas, the payer's code misbehaved, the
   * balance moved): the payment may be settled again, so the row must stay reclaimable.
   */
  | {
      kind: "failed";
      reason: ReasonCode;
      message: string;
      gasCostWei?: bigint;
      authorizationUnused: boolean;
      /** The payer's address had code when it failed: only then can its own code be why. */
      payerHadCode: boolean;
      /** The payer is why (its nonce burnt, its funds moved, its code): receipt.ts failureIsPayersDoing. */
      payersDoing: boolean;
    }
  | { kind: "unknown" };

/**
 * A transfer method's verdict on a row's receipt (eip3009-verdict.ts, permit2-verdict.ts): `cost` is
 * this row's share of the transaction's gas.
 */
export type ReceiptVerdict = (
  client: PublicClient,
  row: SettlementRow,
  receipt: TransactionReceipt,
  expected: ExpectedTransfer,
  cost: { gasUsed: bigint; gasCostWei: bigint },
) => Promise<ChainVerdict>;

export function expectedTransferOf(row: SettlementRow): ExpectedTransfer {
  return { token: row.asset as Address, from: row.payer as Address, to: row.payTo as Address, valueAtomic: BigInt(row.valueAtomic) };
}

/**
 * What the chain says about a row's transaction: paid (by our tx, or by a front-runner who
 * submitted the same authorization first), failed, or not known yet. Waits at most `waitMs`.
 * `known`: the receipt of the row's transaction, already in hand (a sync send answers with it; a
 * batch's rows share one): read as it is, nothing asked for it. A receipt of any other hash is ignored.
 */
export async function chainVerdict(client: PublicClient, row: SettlementRow, waitMs: number, known?: TransactionReceipt): Promise<ChainVerdict> {
  const inHand = known && row.txHash && known.transactionHash.toLowerCase() === row.txHash.toLowerCase() ? known : undefined;
  const receipt = inHand ?? (await receiptWithin(client, row.txHash as Hex, waitMs)) ?? (await replacedReceipt(client, row));
  if (!receipt) return { kind: "unknown" };
  const expected = expectedTransferOf(row);
  // A batch transaction's cost is shared evenly by the settlements it carries.
  const share = BigInt(Math.max(1, row.txSettlements));
  const gasUsed = receipt.gasUsed / share;
  const gasCostWei = (receipt.gasUsed * receipt.effectiveGasPrice) / share;
  return transferMethodDriver(row.transferMethod).verdict(client, row, receipt, expected, { gasUsed, gasCostWei });
}

/** After fee bumps, the earlier transaction at the same nonce may be the one that was mined. */
async function replacedReceipt(client: PublicClient, row: SettlementRow): Promise<TransactionReceipt | undefined> {
  for (const hash of row.replacedTxHashes ?? []) {
    const receipt = await receiptWithin(client, hash as Hex, 0);
    if (receipt) return receipt;
  }
  return undefined;
}

async function receiptWithin(client: PublicClient, hash: Hex, waitMs: number): Promise<TransactionReceipt | undefined> {
  try {
    // Ask once straight away: on automine and fast L2s the receipt often exists before any new-block poll.
    const immediate = await client.getTransactionReceipt({ hash }).catch((error: unknown) => {
      if (error instanceof TransactionReceiptNotFoundError) return undefined;
      throw error;
    });
    if (immediate || waitMs <= 0) return immediate;
    // viem has no default timeout here: always pass one (ARCHITECTURE.md pitfall 4).
    return await client.waitForTransactionReceipt({ hash, timeout: waitMs, pollingInterval: 100, retryCount: 0 });
  } catch (error) {
    if (error instanceof TransactionReceiptNotFoundError || error instanceof WaitForTransactionReceiptTimeoutError) return undefined;
    if (isTransportFailure(error)) return undefined;
    throw error;
  }
}
