import { parseEventLogs, type Address, type Hex, type Log, type TransactionReceipt } from "viem";
import { eip3009Abi } from "../exact-evm/abi.js";

export interface ExpectedTransfer {
  token: Address;
  from: Address;
  to: Address;
  valueAtomic: bigint;
}

/**
 * A receipt proves payment only if the token logged Transfer(from → to, value). `status: success`
 * alone is not proof: some EIP-3009 tokens return quietly on a used nonce and move nothing.
 */
export function receiptPaysExpected(receipt: Pick<TransactionReceipt, "status" | "logs">, expected: ExpectedTransfer): boolean {
  if (receipt.status !== "success") return false;
  const transfers = parseEventLogs({ abi: eip3009Abi, eventName: "Transfer", logs: receipt.logs as Log[], strict: true });
  return transfers.some(
    (log) =>
      log.address.toLowerCase() === expected.token.toLowerCase() &&
      log.args.from.toLowerCase() === expected.from.toLowerCase() &&
      log.args.to.toLowerCase() === expected.to.toLowerCase() &&
      log.args.value === expected.valueAtomic,
  );
}

/**
 * For a transaction that carries several settlements (a Multicall3 batch whose calls may fail one
 * by one): this authorization's own AuthorizationUsed(from, nonce) log, plus a Transfer(from → to,
 * value). A Transfer alone proves nothing here, since another call of the batch may move the same
 * amount between the same two addresses; a call that failed left no logs at all, so its
 * AuthorizationUsed is missing. (A token that logs AuthorizationUsed for an already used nonce
 * without moving anything — our TestUSDC quirk — only does so when the payee was paid before.)
 */
export function receiptPaysAuthorization(receipt: Pick<TransactionReceipt, "status" | "logs">, expected: ExpectedTransfer, nonce: Hex): boolean {
  return receiptPaysExpected(receipt, expected) && authorizationUsedLogs(receipt.logs, expected.token, expected.from, nonce).length > 0;
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
    (log) =>
      log.address.toLowerCase() === token.toLowerCase() &&
      log.args.authorizer.toLowerCase() === from.toLowerCase() &&
      log.args.nonce.toLowerCase() === nonce.toLowerCase(),
  );
}
