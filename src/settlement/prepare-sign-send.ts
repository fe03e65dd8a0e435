import {
  BaseError,
  HttpRequestError,
  TimeoutError,
  formatTransactionReceipt,
  hexToBigInt,
  keccak256,
  toHex,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type RpcTransactionReceipt,
  type TransactionReceipt,
} from "viem";
import { hasCode } from "../chain/code.js";
import type { SharedChainReads } from "../chain/shared-reads.js";
import { isMethodUnsupported, isTransportFailure, rethrowAsUnavailable, revertReason, rpcErrorCode, throwIfTransportFailure } from "../chain/rpc-errors.js";
import { syncSendMethod, type SyncSendRoute } from "../chain/send-routes.js";
import { withTimeout } from "../util/with-timeout.js";
import type { Limits } from "../config.js";
import { settlementGasMax } from "../exact-evm/payment-limits.js";
import type { ResolvedPayment } from "../exact-evm/resolve.js";
import type { ContractCall } from "../exact-evm/transfer-call.js";
import { transferMethodDriver } from "../transfer-methods/driver.js";
import { SignerCannotPayError } from "../errors.js";
import { redactUrls } from "../redact.js";
import { withDataSuffix } from "../protocol/builder-code.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection } from "../protocol/types.js";

/** How nodes word an estimate that did not fit in the gas it was given (geth, Anvil, reth, Erigon). */
const outOfGasPattern = /out of gas|gas required exceeds|exceeds (the )?(gas )?allowance|intrinsic gas too low|OutOfGas/i;

export interface PreparedTransaction {
  /** The settlement call as it is estimated and batched: without the data suffix (added at signing). */
  call: ContractCall;
  /** Covers the data suffix too: the estimate ran with it. */
  gasLimit: bigint;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  chainPendingNonce: number;
  /** The signer's native balance when this was prepared: a batch must fit in it too. */
  signerBalanceWei: bigint;
  /**
   * The payer's address has code (a smart wallet, or an EIP-7702 delegated key): its signature
   * check runs code we do not control, so it settles alone (and may be cooled down, see
   * payerCodeCooldownMs); in a batch its call could only burn its own gas limit, but it would
   * share the transaction's cost with the other rows.
   */
  payerHasCode: boolean;
}

/**
 * Everything settle asks the chain before it takes a tx nonce: fees, then in one batched round
 * trip a gas estimate (which is also the simulation: a reverting payload never gets a nonce, so
 * it can burn neither a nonce nor gas — ARCHITECTURE.md pitfalls 2 and 7), the signer's pending
 * nonce and balance (fees and these two shared with the settlements preparing at the same moment:
 * SharedChainReads) and the payer's code; the payer's balance and authorization state only when
 * the estimate failed, to say why (Permit2: balance, allowance to Permit2 and the nonce's bit). About
 * two calls per payment in a burst for EIP-3009; a Permit2 payment carrying an EIP-2612 permit also
 * reads its allowance to Permit2 before the estimate, to choose settle or settleWithPermit (the
 * transfer method's settlementCall). The estimate runs on the calldata as it will be signed,
 * `dataSuffix` (the builder code) included: its bytes' calldata gas is in the gas limit, and a token that refused trailing
 * calldata would fail here, not on chain.
 */
export async function prepareTransaction(
  client: PublicClient,
  /** Fees and the signer's nonce and balance, shared with the settlements preparing at the same moment (the chain's one instance). */
  reads: SharedChainReads,
  payment: ResolvedPayment,
  signer: LocalAccount,
  limits: Pick<Limits, "gasPerSettlementMax" | "gasPerDeployingSettlementMax" | "maxFeePerGasWei" | "minSignerBalanceWei">,
  dataSuffix?: Hex,
): Promise<PreparedTransaction | Rejection> {
  const method = transferMethodDriver(payment.request.transferMethod);
  // Deploying a counterfactual wallet costs several times a transfer: it has its own, explicit cap.
  const gasCap = settlementGasMax(payment.payerKind, limits);
  // Fees first: the estimate runs with the fees the transaction will carry, so code at the payer's
  // address sees the same GASPRICE and BASEFEE as on chain (with 0 it could tell a simulation apart).
  const [fees, call] = await Promise.all([
    reads.fees().catch(rethrowAsUnavailable("reading fees")),
    method.settlementCall(client, payment),
  ]);
  if (!("to" in call)) return call;
  const [estimate, chainPendingNonce, signerBalanceWei, payerHasCode] = await Promise.all([
    // The estimate is also the simulation; bounded by the cap, so a payer's code cannot make the
    // node search up to its own gas cap (an estimate above the cap fails like a revert would).
    estimateGasWithin(
      client,
      { from: signer.address, to: call.to, data: withDataSuffix(call.data, dataSuffix), maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas },
      gasCap,
    ).then(
      (gas) => ({ ok: true as const, gas }),
      (error: unknown) => {
        throwIfTransportFailure(error, "estimating settlement gas");
        return { ok: false as const, revertText: revertReason(error) ?? "reverted", error };
      },
    ),
    reads.pendingNonce(signer.address).catch(rethrowAsUnavailable("reading the signer nonce")),
    reads.balanceWei(signer.address).catch(rethrowAsUnavailable("reading the signer balance")),
    hasCode(client, payment.request.authorization.from).catch(rethrowAsUnavailable("reading the payer's code")),
  ]);
  if (!estimate.ok) {
    // Why it reverted, in the spec's terms: the payer's state is read only to explain a failed
    // simulation. A passing one already proves the nonce unused and the balance enough (the
    // configured token enforces both in the very call that was simulated).
    const explained = await method.explainFailedEstimate(client, payment, signer.address, limits);
    if (explained) return explained;
    // The estimate runs with our fees, so a signer that cannot pay for the cap fails it too (nodes
    // say "insufficient funds" or "gas required exceeds allowance: 0"): that is ours to fix, not the payer's.
    if (/insufficient funds/i.test(estimate.revertText) || signerBalanceWei < gasCap * fees.maxFeePerGas) {
      throw new SignerCannotPayError(signer.address, `signer ${signer.address} holds ${signerBalanceWei} wei, too little to simulate ${gasCap} gas at ${fees.maxFeePerGas} wei/gas: fund it`);
    }
    if (outOfGasPattern.test(estimate.revertText)) {
      return { reason: ReasonCode.gasCapExceeded, message: `settlement needs more than the cap of ${gasCap} gas (${estimate.revertText})` };
    }
    return method.rejectionOfRevert(estimate);
  }
  if (estimate.gas > gasCap) {
    return { reason: ReasonCode.gasCapExceeded, message: `settlement needs ${estimate.gas} gas, above the cap of ${gasCap}` };
  }
  // 20 % headroom over the estimate, never above the cap: state can shift between estimate and inclusion.
  const padded = (estimate.gas * 12n) / 10n;
  const gasLimit = padded < gasCap ? padded : gasCap;
  if (fees.maxFeePerGas > limits.maxFeePerGasWei) {
    throw new SignerCannotPayError(signer.address, `network fees (${fees.maxFeePerGas} wei/gas) are above MAX_FEE_PER_GAS_WEI (${limits.maxFeePerGasWei})`);
  }
  const worstCaseCostWei = gasLimit * fees.maxFeePerGas;
  if (signerBalanceWei < worstCaseCostWei) {
    throw new SignerCannotPayError(signer.address, `signer ${signer.address} holds ${signerBalanceWei} wei, less than one settlement may cost (${worstCaseCostWei} wei): fund it`);
  }
  if (signerBalanceWei < limits.minSignerBalanceWei) {
    throw new SignerCannotPayError(signer.address, `signer ${signer.address} holds ${signerBalanceWei} wei, below MIN_SIGNER_BALANCE_WEI (${limits.minSignerBalanceWei}): fund it`);
  }
  return { call, gasLimit, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas, chainPendingNonce, signerBalanceWei, payerHasCode };
}

/**
 * eth_estimateGas with an explicit gas limit. Sent as is: viem's estimateGas() drops the `gas`
 * parameter from the request (2.57), and then the node searches up to its own cap (30M on Anvil) —
 * measured 29.5M gas of node work per /settle from a payer whose code burns gas, against 0.3M.
 */
async function estimateGasWithin(
  client: PublicClient,
  call: { from: Address; to: Address; data: Hex; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint },
  gasMax: bigint,
): Promise<bigint> {
  const request = {
    from: call.from,
    to: call.to,
    data: call.data,
    gas: toHex(gasMax),
    maxFeePerGas: toHex(call.maxFeePerGas),
    maxPriorityFeePerGas: toHex(call.maxPriorityFeePerGas),
  };
  const estimate = await client.request({ method: "eth_estimateGas", params: [request] });
  return hexToBigInt(estimate);
}

export function isPrepared(value: PreparedTransaction | Rejection): value is PreparedTransaction {
  return "call" in value;
}

/**
 * The one place a settlement transaction (a plain token call or a BatchSettler batch) gets its
 * final calldata: the call's, then `dataSuffix` (the ERC-8021 builder code; each prepared call's
 * gas limit was estimated with it, so a batch, which carries it once, has it n times over).
 * Fee bumps re-sign these bytes as they are (fee-bump.ts).
 */
export async function signSettlementTransaction(
  signer: LocalAccount,
  chainId: number,
  prepared: PreparedTransaction,
  txNonce: number,
  dataSuffix?: Hex,
): Promise<{ rawTx: Hex; txHash: Hex }> {
  const rawTx = await signer.signTransaction({
    type: "eip1559",
    chainId,
    to: prepared.call.to,
    data: withDataSuffix(prepared.call.data, dataSuffix),
    value: 0n,
    nonce: txNonce,
    gas: prepared.gasLimit,
    maxFeePerGas: prepared.maxFeePerGas,
    maxPriorityFeePerGas: prepared.maxPriorityFeePerGas,
  });
  return { rawTx, txHash: keccak256(rawTx) };
}

export type BroadcastResult =
  /** alreadyKnown: the node had it already (it is in the pool, or mined). */
  | { kind: "accepted"; alreadyKnown: boolean }
  /** The node answered and refused it: nothing is in any pool, the nonce may be handed back. */
  | { kind: "rejected"; message: string; nonceConsumed: boolean; signerUnfunded: boolean }
  /** No answer (timeout, network): the transaction may or may not be out there. */
  | { kind: "unknown"; message: string };

export async function broadcastRawTransaction(client: PublicClient, rawTx: Hex): Promise<BroadcastResult> {
  try {
    await client.sendRawTransaction({ serializedTransaction: rawTx });
    return { kind: "accepted", alreadyKnown: false };
  } catch (error) {
    return sendRefusal(client, rawTx, error);
  }
}

/** What a send's error says: already there (accepted), no answer (unknown), or the node's refusal. */
async function sendRefusal(client: PublicClient, rawTx: Hex, error: unknown): Promise<BroadcastResult> {
  // The node's text may quote the RPC URL (an API key in its path): redacted at the source, since
  // it goes on to logs, the row's error_message and the answer.
  const message = sendErrorMessage(error);
  if (/already known|known transaction|AlreadyKnown|already imported/i.test(message)) return { kind: "accepted", alreadyKnown: true };
  if (isTransportFailure(error)) return { kind: "unknown", message };
  const nonceConsumed = /nonce too low|nonce.*already.*used|NonceTooLow/i.test(message);
  // "Nonce too low" may mean OUR transaction took the nonce: a fallback transport resends the same
  // bytes to the next RPC after the first one forwarded them and lost the answer. Then it is sent.
  if (nonceConsumed) {
    const ours = await client.getTransaction({ hash: keccak256(rawTx) }).then(
      () => "found" as const,
      (lookupError: unknown) => (isTransportFailure(lookupError) ? ("unknown" as const) : ("absent" as const)),
    );
    if (ours === "found") return { kind: "accepted", alreadyKnown: true };
    if (ours === "unknown") return { kind: "unknown", message };
  }
  return { kind: "rejected", message, nonceConsumed, signerUnfunded: /insufficient funds/i.test(message) };
}

function sendErrorMessage(error: unknown): string {
  return redactUrls(error instanceof BaseError ? (error.details ?? error.shortMessage) : String(error));
}

export type SyncBroadcastResult =
  /** The node included it and answered with its receipt. */
  | { kind: "included"; receipt: TransactionReceipt }
  /**
   * It is in the node's pool but not included yet: the node's own wait ran out (EIP-7966 error 4;
   * Anvil's "transaction confirmation timeout") or the node holds it as not ready (error 5: a nonce
   * gap, say). No receipt: the caller polls for it like after a plain send.
   */
  | { kind: "accepted"; alreadyKnown: boolean; message?: string }
  /** The transport failed (connection lost, HTTP error, the answer lost): it may or may not be out there. */
  | { kind: "unknown"; message: string }
  /** Still no answer when `waitMs` ended: the node may be waiting for inclusion, or never got it. */
  | { kind: "no-answer" }
  /** The URL does not serve eth_sendRawTransactionSync after all: nothing was sent. */
  | { kind: "unsupported"; message: string };

/** EIP-7966's "added to the pool, not included within the wait" (4) and "added, not ready" (5), and Anvil's wording of the first. */
const syncPendingCodes = new Set([4, 5]);
const syncTimeoutPattern = /confirmation timeout|wasn't processed|was not processed|timed out waiting|timeout waiting for|not (yet )?(included|mined) (with)?in/i;

/**
 * eth_sendRawTransactionSync (EIP-7966) through `route` (one URL, no batching, no retries), waiting
 * at most `waitMs` for its answer. Never with the optional timeout parameter: Anvil 1.7 rejects it,
 * and the node's own default (2 s in the EIP, 30 s on Anvil) is the most it waits anyway. A node
 * timeout is not a failure: the transaction is in its pool (`accepted`, no receipt). Any other
 * error is `unknown`: the caller learns what it means from a plain send of the same bytes.
 */
export async function broadcastRawTransactionSync(route: Pick<SyncSendRoute, "client">, rawTx: Hex, waitMs: number): Promise<SyncBroadcastResult> {
  const answer = route.client
    .request({ method: syncSendMethod, params: [rawTx] } as never, { retryCount: 0 })
    .then(
      (raw: unknown) => ({ kind: "receipt" as const, raw }),
      (error: unknown) => ({ kind: "error" as const, error }),
    );
  const settled = await withTimeout(answer, Math.max(0, waitMs), () => undefined);
  if (!settled) return { kind: "no-answer" };
  if (settled.kind === "receipt") {
    const receipt = settled.raw && typeof settled.raw === "object" ? formatTransactionReceipt(settled.raw as RpcTransactionReceipt) : undefined;
    // A node that answers without a receipt of these very bytes has it at best: look it up as after a plain send.
    if (!receipt || receipt.transactionHash?.toLowerCase() !== keccak256(rawTx)) return { kind: "accepted", alreadyKnown: false, message: "the sync send answered without this transaction's receipt" };
    return { kind: "included", receipt };
  }
  const { error } = settled;
  const message = sendErrorMessage(error);
  if (isMethodUnsupported(error)) return { kind: "unsupported", message };
  const code = rpcErrorCode(error);
  const isNodeAnswer = error instanceof BaseError && !error.walk((cause) => cause instanceof TimeoutError || cause instanceof HttpRequestError);
  if (isNodeAnswer && ((code !== undefined && syncPendingCodes.has(code)) || syncTimeoutPattern.test(message))) return { kind: "accepted", alreadyKnown: false, message };
  // Any other error is not taken as a refusal: a node's or gateway's wording of "still waiting"
  // that we do not know (geth's -32002 "request timed out", say) would fail rows whose transaction
  // is in the pool, and hand its nonce back. The caller sends the same bytes plainly and records
  // that answer instead: "already known" if the node has them, the node's refusal if it has not.
  return { kind: "unknown", message };
}
