import { keccak256, parseEventLogs, toHex, type Address, type Hex, type Log, type TransactionReceipt } from "viem";
import { batchSettlerAbi, batchSettlerAddress } from "../contracts/batch-settler.js";
import { eip3009Abi } from "../exact-evm/abi.js";
import type { SettlementRow } from "../store/schema.js";

export interface ExpectedTransfer {
  token: Address;
  from: Address;
  to: Address;
  valueAtomic: bigint;
}

/** Where in its transaction the Transfer that paid one settlement sits. */
export interface PaymentLog {
  transactionHash: Hex;
  /** The Transfer's logIndex in the block: one Transfer log is credited to one settlement at most. */
  transferLogIndex: number;
}

type ReceiptLogs = Pick<TransactionReceipt, "status" | "logs">;

/**
 * A receipt pays a settlement only through the Transfer emitted by the same call that used its
 * authorization. FiatToken (and every EIP-3009 token we serve) emits AuthorizationUsed(from,
 * nonce) and then, as its very next log, Transfer(from → to, value), both from the token. So the
 * pair is found by log order: this authorization's AuthorizationUsed, immediately followed by a
 * Transfer from the same token with the expected parties and value.
 *
 * Why so strict: `status: success` proves nothing (some tokens return quietly on a used nonce),
 * and "any Transfer(from → to, value) in the transaction" lets a front-runner that consumes nonce
 * n1 with a different authorization, next to another payment's Transfer, credit two settlements
 * with one Transfer (ARCHITECTURE.md pitfall 16). A pair ties each Transfer to exactly one (from, nonce), and a
 * (token, from, nonce) is used once on chain, so no Transfer can be credited twice.
 */
export function paymentLogOf(receipt: ReceiptLogs, expected: ExpectedTransfer, nonce: Hex): PaymentLog | undefined {
  if (receipt.status !== "success") return undefined;
  const logs = [...(receipt.logs as Log[])].sort((a, b) => (a.logIndex ?? 0) - (b.logIndex ?? 0));
  for (const used of authorizationUsedLogs(logs, expected.token, expected.from, nonce)) {
    const next = logs.find((log) => log.logIndex === (used.logIndex ?? -2) + 1);
    if (!next || !sameAddress(next.address, expected.token)) continue;
    const [transfer] = parseEventLogs({ abi: eip3009Abi, eventName: "Transfer", logs: [next], strict: true });
    if (!transfer) continue;
    const { from, to, value } = transfer.args;
    if (sameAddress(from, expected.from) && sameAddress(to, expected.to) && value === expected.valueAtomic && transfer.transactionHash) {
      return { transactionHash: transfer.transactionHash, transferLogIndex: transfer.logIndex! };
    }
  }
  return undefined;
}

/** The transactions that logged AuthorizationUsed(from, nonce) on the token, newest first. */
export function authorizationUsedTxHashes(logs: ReadonlyArray<Log>, token: Address, from: Address, nonce: Hex): Hex[] {
  return authorizationUsedLogs(logs, token, from, nonce)
    .map((log) => log.transactionHash)
    .filter((hash): hash is Hex => hash !== null)
    .reverse();
}

/** The token's AuthorizationUsed(from, nonce) logs among `logs`. */
function authorizationUsedLogs(logs: ReadonlyArray<Log>, token: Address, from: Address, nonce: Hex) {
  return parseEventLogs({ abi: eip3009Abi, eventName: "AuthorizationUsed", logs: logs as Log[], strict: true }).filter(
    (log) => sameAddress(log.address, token) && sameAddress(log.args.authorizer, from) && log.args.nonce.toLowerCase() === nonce.toLowerCase(),
  );
}

function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

const proxySettledTopics = new Set([keccak256(toHex("Settled()")), keccak256(toHex("SettledWithPermit()"))]);

/**
 * A receipt pays a Permit2 settlement only through the Transfer made by the proxy call that used its
 * permit: Permit2 emits nothing of its own, so the proof is the token's Transfer(owner → payTo,
 * value) immediately followed by the proxy's Settled() / SettledWithPermit() (the proxy emits it
 * right after Permit2's transferFrom returns), in a transaction sent to that proxy. Our Permit2
 * settlements are never batched (upto's proxy takes calls from the witness's facilitator only, and
 * a batch would be msg.sender), so one such pair in our own transaction is this permit's; the
 * verdict also reads the nonce's bit at the receipt's block.
 */
export function permit2PaymentLogOf(receipt: ReceiptLogs & Pick<TransactionReceipt, "to">, expected: ExpectedTransfer, proxy: Address): PaymentLog | undefined {
  if (receipt.status !== "success" || !receipt.to || !sameAddress(receipt.to, proxy)) return undefined;
  const logs = [...(receipt.logs as Log[])].sort((a, b) => (a.logIndex ?? 0) - (b.logIndex ?? 0));
  const transfers = parseEventLogs({ abi: eip3009Abi, eventName: "Transfer", logs, strict: true });
  for (const transfer of transfers) {
    if (!sameAddress(transfer.address, expected.token)) continue;
    const { from, to, value } = transfer.args;
    if (!sameAddress(from, expected.from) || !sameAddress(to, expected.to) || value !== expected.valueAtomic || !transfer.transactionHash) continue;
    const next = logs.find((log) => log.logIndex === (transfer.logIndex ?? -2) + 1);
    const topic = next?.topics[0];
    if (next && sameAddress(next.address, proxy) && topic !== undefined && proxySettledTopics.has(topic)) {
      return { transactionHash: transfer.transactionHash, transferLogIndex: transfer.logIndex! };
    }
  }
  return undefined;
}

/**
 * Whether a settlement that did not pay failed by the payer's doing — what serialises the payer
 * (PAYER_ONE_AT_A_TIME_MS) and, with code at its address, cools it down (PAYER_CODE_COOLDOWN_MS):
 * - its nonce used without paying payTo: only the payer's own signature or call can do that
 *   (cancelAuthorization, another authorization with the same nonce, Permit2's
 *   invalidateUnorderedNonces; a front-run that paid payTo is a "paid" verdict, not this);
 * - its authorization unused and its own call failed: a transaction of its own, whatever made it
 *   fail — out of gas too: a codeless key can delegate (EIP-7702) to a gas burner ahead of our
 *   transaction and undelegate after it, so "no code now" proves nothing (review of the exemption
 *   tried for a payTo that makes our padded limit short: that can only slow an honest payer, the
 *   exemption let an attacker off entirely); inside a batch, only when BatchSettler ran and every
 *   call it reports failed, failed by itself (CallFailed, skipped = false). A batch that reverted as
 *   a whole, ran no call (no BatchSettler log) or skipped calls for want of gas is no payer's doing —
 *   conservatively for all its rows, even one whose call failed by itself (the logs are not matched
 *   to the row's index).
 */
export function failureIsPayersDoing(
  row: Pick<SettlementRow, "txSettlements">,
  receipt: Pick<TransactionReceipt, "status" | "logs">,
  failure: { authorizationUsed: boolean },
): boolean {
  if (failure.authorizationUsed) return true;
  if (row.txSettlements <= 1) return true;
  if (receipt.status !== "success") return false;
  const failures = parseEventLogs({ abi: batchSettlerAbi, eventName: "CallFailed", logs: receipt.logs, strict: true }).filter((log) => sameAddress(log.address, batchSettlerAddress));
  return failures.length > 0 && failures.every((log) => !log.args.skipped);
}
