import type { Hex, LocalAccount, PublicClient, TransactionReceipt } from "viem";
import { setTimeout as sleep } from "node:timers/promises";
import type { SharedChainReads } from "../chain/shared-reads.js";
import type { ChainRegistry } from "../chain/registry.js";
import type { PayerFunds } from "../transfer-methods/driver.js";
import type { SignerLease, SignerPool, TransactionSlot } from "../chain/signers.js";
import { nowSeconds, type Clock } from "../clock.js";
import type { Limits } from "../config.js";
import { claimLeaseMarginMs } from "../limits.js";
import { FacilitatorError, SignerCannotPayError, SignersBusyError } from "../errors.js";
import { redactedMessage } from "../redact.js";
import type { RecoverSigner } from "../exact-evm/recover-pool.js";
import { isRejection, isZeroCharge, resolvePayment, type ResolvedPayment } from "../exact-evm/resolve.js";
import { zeroChargeRejection } from "../permit2/chain-state.js";
import type { Permit2Contracts } from "../permit2/presence.js";
import { authorizationKeyOf, transferMethodDriver } from "../transfer-methods/driver.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { PaymentRequest, Rejection } from "../protocol/types.js";
import type { Metrics } from "../metrics.js";
import type { Database } from "../store/db.js";
import type { GasBudgetRepository } from "../store/gas-budget-repo.js";
import type { ChangeWaiters } from "../store/notifications.js";
import type { PayerFailuresRepository } from "../store/payer-failures-repo.js";
import type { SettlementRow } from "../store/schema.js";
import { fundsLockKey, type NewSettlement, type ReservedFunds, type SettlementsRepository } from "../store/settlements-repo.js";
import { isFinal, isReclaimable } from "../store/settlement-states.js";
import { allocateNonceAndPersistSigned, refuseSignedTransaction } from "../store/tx-nonces.js";
import {
  broadcastRawTransaction,
  broadcastRawTransactionSync,
  isPrepared,
  prepareTransaction,
  signSettlementTransaction,
  type BroadcastResult,
  type PreparedTransaction,
} from "./prepare-sign-send.js";
import type { SyncSendRoute } from "../chain/send-routes.js";
import { chainVerdict, type ChainVerdict } from "./chain-verdict.js";
import { duplicate, failed, outcomeOfFinalRow, pending, succeeded, type SettleOutcome } from "./outcome.js";
import { crashPoint } from "./crash-points.js";
import { bumpedFeeCapPerGas } from "./fee-bump.js";
import { GroupCommit } from "../util/group-commit.js";
import { KeyedSerial } from "../util/keyed-serial.js";
import { ContractPresence } from "./contract-presence.js";
import { batchSettlerAddress } from "../contracts/batch-settler.js";
import { batchTransaction, splitIntoBatches } from "./batch-transaction.js";

export interface Logger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

export interface SettlementEngineDeps {
  db: Database;
  repo: SettlementsRepository;
  chains: ChainRegistry;
  signers: SignerPool;
  clock: Clock;
  limits: Limits;
  /**
   * Appended to the calldata of every settlement transaction, single or batched (the ERC-8021
   * builder code, protocol/builder-code.ts); estimated with it. None by default.
   */
  dataSuffix?: Hex;
  log: Logger;
  metrics?: Pick<Metrics, "signerCannotPay" | "observeSettlementTransaction">;
  /** Daily gas budgets of API keys: reserved before signing, settled with the real cost. */
  gasBudget: GasBudgetRepository;
  /** Payers whose settlements failed on chain by their own doing (payerCodeCooldownMs, payerOneAtATimeMs). */
  payerFailures: PayerFailuresRepository;
  /** Recovers 65-byte signatures' signers (the services' RecoverPool). */
  recoverSigner: RecoverSigner;
  /** Whether Permit2 and the x402 proxies have code, per chain (Permit2 payments only). */
  permit2Contracts: Permit2Contracts;
  /** Sanctions screening of payer and payTo (src/screening/), before the claim: a rejection refuses the payment. */
  screen?: (payment: ResolvedPayment) => Promise<Rejection | undefined>;
  /**
   * Where duplicates wait for a row's verdict, by row id (store/notifications.ts): woken by the
   * repository's writes in this process and by NOTIFY from other instances, never by polling.
   */
  rowWaiters: ChangeWaiters<SettlementRow | undefined>;
}

/** Who asks: the caller's API key and its daily gas budget, when it has them. */
export interface SettleCaller {
  apiKeyId?: string;
  dailyGasBudgetWei?: bigint;
}

/** A claimed, simulated settlement waiting for its signer to take a tx nonce. */
interface PendingSigning {
  row: SettlementRow;
  account: LocalAccount;
  chainId: number;
  prepared: PreparedTransaction;
  /** The request's settle budget ends here: past it, it leaves the queue unsigned. */
  deadlineMs: number;
  /** Sent in a transaction of its own, never in a batch (see mayBatch, settleAgainAlone). */
  alone: boolean;
  /**
   * Why the authorization can no longer be signed for at `nowSeconds` (it expires before a
   * transaction would be mined: TransferMethodDriver.checkValidityAtSigning), or undefined.
   */
  invalidAtSigning(nowSeconds: bigint): Rejection | undefined;
  /**
   * Set once a transaction carrying this settlement is persisted: its share of that transaction's
   * in-flight slot, released when this settlement has its verdict or stops waiting for it.
   */
  releaseTransactionShare?: () => void;
}

/** What the node said about one row's transaction (the row as persisted). */
type NodeAnswer =
  | { kind: "pending"; row: SettlementRow } // signed, the node's answer is unknown: settlement_pending
  /** In the node's pool; `receipt`: a sync send's answer, the transaction included (every row of a batch shares it). */
  | { kind: "submitted"; row: SettlementRow; receipt?: TransactionReceipt }
  | { kind: "rejected"; row: SettlementRow; signerUnfunded: boolean };

/** What became of one row's transaction at broadcast. */
type SentSettlement =
  | { kind: "not-ours" } // the row was no longer claimed when the signer took it: it was left out
  | { kind: "unsent"; error: unknown } // failed before anything was persisted: nothing reached the chain
  | { kind: "expired"; rejection: Rejection } // its authorization expired while it queued: nothing persisted or sent
  | NodeAnswer
  /**
   * Sent with eth_sendRawTransactionSync: the node answers once the transaction is included, so the
   * signer's next transaction does not wait for it (nodes queue a later nonce until the earlier one
   * arrives). `answer` never rejects.
   */
  | { kind: "sending"; row: SettlementRow; answer: Promise<NodeAnswer> };

/** What one advance() step found: a written verdict, no receipt yet, or the node's refusal. */
export type Advanced =
  | { kind: "final"; row: SettlementRow; successClaimed: boolean }
  | { kind: "unknown"; row: SettlementRow }
  | { kind: "refused"; row: SettlementRow };

/**
 * How one attempt ended: with the caller's answer, or failed on chain with the authorization still
 * unused and budget left (the payment may be sent again, see settleClaimed).
 */
type AttemptEnd = { kind: "answered"; outcome: SettleOutcome } | { kind: "payable-again"; row: SettlementRow };

const answered = (outcome: SettleOutcome): AttemptEnd => ({ kind: "answered", outcome });

/**
 * A settlement waiting for its payer's funds (reserveFunds) looks again this long after the waiters'
 * cap turned its wait away, instead of spinning through its rounds.
 */
const fundsWaitBackoffMs = 250;

/**
 * The message stored on a released claim, which a duplicate caller may be answered with: our own
 * errors say what happened; anything else (a driver's "Failed query: <SQL> …") stays in the logs.
 */
function unsentMessage(error: unknown): string {
  return error instanceof FacilitatorError ? redactedMessage(error) : "internal error while preparing the settlement; see the facilitator logs";
}

/** Why a claim was released without anything sent: the budget's or the payer's own code, else "unavailable". */
function reasonOfUnsent(error: unknown): ReasonCode {
  if (error instanceof FacilitatorError && (error.code === ReasonCode.gasBudgetExhausted || error.code === ReasonCode.payerBusy)) return error.code;
  return ReasonCode.serviceUnavailable;
}

/**
 * /settle, exactly once (ARCHITECTURE.md §1.2): claim in Postgres → prepare (simulate, estimate) → take a
 * tx nonce, sign and persist → broadcast → wait for a receipt that proves payment, within the
 * budget. Every path answers within settleBudgetMs and names the tx hash once one exists.
 */
export class SettlementEngine {
  /**
   * The one sending path. Per signer, one group of queued settlements is signed and sent at a time;
   * the settlements that queue meanwhile form the next group (up to SETTLE_BATCH_MAX; with 1, every
   * settlement is its own transaction). A lone settlement is a group of one. "Sent": the node
   * answered a plain send; a sync send (eth_sendRawTransactionSync, answered at inclusion) counts as
   * sent once it is on its way, so the next group never waits for the previous one's block: a
   * signer's transactions go out back to back with consecutive nonces. A group is taken from the
   * queue only when the signer may have another transaction in flight (IN_FLIGHT_PER_SIGNER_MAX),
   * so while its transactions wait for a block, a burst gathers into full batches.
   */
  private readonly sender: GroupCommit<PendingSigning, SentSettlement>;
  private readonly batchSettler: ContractPresence;
  private readonly warnedNoBatchSettler = new Set<number>();
  /** The last send route logged per chain ("sync <url>" or "async"), so a change is logged once. */
  private readonly loggedSendRoute = new Map<number, string>();
  /** Funds reservations (reserveFunds), one at a time per (chain, token, payer) in this process. */
  private readonly fundsReservations = new KeyedSerial();

  constructor(private readonly deps: SettlementEngineDeps) {
    this.batchSettler = new ContractPresence(batchSettlerAddress, deps.clock);
    this.sender = new GroupCommit(
      deps.limits.settleBatchMax,
      (_key, items, answerNow) => this.sendQueued(items, answerNow),
      (_key, next) => deps.signers.transactionSlotFree(next.chainId, next.account.address, next.deadlineMs),
    );
    // At start: which RPC URLs serve sync sends (SEND_MODE=auto; asked once per URL, see send-routes.ts).
    for (const chain of deps.chains.all()) chain.sends.warm();
  }

  /** Settlements prepared and queued for their signer's next transaction (metrics, tests). */
  waitingToSend(): number {
    return this.sender.queuedTotal();
  }

  async settle(request: PaymentRequest, caller: SettleCaller = {}): Promise<SettleOutcome> {
    const { deps } = this;
    const deadlineMs = deps.clock.nowMs() + deps.limits.settleBudgetMs;
    const resolved = resolvePayment(request, (chainId) => deps.chains.get(chainId)?.config);
    if (isRejection(resolved)) return failed(resolved.reason, resolved.message);
    // What differs between EIP-3009 and Permit2 is the driver's (transfer-methods/driver.ts).
    const method = transferMethodDriver(request.transferMethod);
    const client = deps.chains.get(resolved.network.chainId)!.publicClient;
    // Binding and terms, the signature, the asset's (and Permit2's) code: before Postgres.
    const checked = await method.checkForSettle(client, resolved, {
      signerAddresses: deps.signers.addresses(),
      permit2Contracts: deps.permit2Contracts,
      limits: deps.limits,
      recoverSigner: deps.recoverSigner,
    });
    if (!checked.ok) return failed(checked.rejection.reason, checked.rejection.message);
    const payment: ResolvedPayment = { ...resolved, payerKind: checked.payerKind };

    // A validly signed payment we already hold is answered from its row, whatever the clock says now.
    const existing = await deps.repo.findByKey(authorizationKeyOf(payment));
    if (existing && !isReclaimable(existing)) return this.answerExisting(existing, payment, deadlineMs, caller);
    const windowRejection = method.checkWindow(request, nowSeconds(deps.clock));
    if (windowRejection) return failed(windowRejection.reason, windowRejection.message);
    const sanctioned = await deps.screen?.(payment);
    if (sanctioned) return failed(sanctioned.reason, sanctioned.message);
    if (isZeroCharge(payment)) return this.settleNothing(payment);

    await this.refuseIfPayerBusy(payment);
    return this.claimAndSettle(payment, deadlineMs, caller);
  }

  private async claimAndSettle(payment: ResolvedPayment, deadlineMs: number, caller: SettleCaller): Promise<SettleOutcome> {
    const { deps } = this;
    const claimed = await deps.repo.claim(this.claimOf(payment, caller.apiKeyId));
    if (!claimed) {
      const winner = await deps.repo.findByKey(authorizationKeyOf(payment));
      if (!winner) throw new Error("claim lost to a row that cannot be read back");
      return this.answerExisting(winner, payment, deadlineMs, caller);
    }
    deps.log.info({ settlementId: claimed.id, payer: claimed.payer, chainId: claimed.chainId }, "settlement claimed");
    crashPoint("after-claim");
    return this.settleClaimed(claimed, payment, deadlineMs, caller);
  }

  /**
   * An upto charge of 0 (@x402/evm 2.27: success, no transaction, `amount: "0"`; its proxy would
   * revert InvalidAmount anyway): verify's chain checks at the cap (zeroChargeRejection: the nonce
   * unused, the cap payable from the witness's facilitator), then success — and nothing recorded,
   * as 2.27 keeps nothing: a 0 charge takes nothing from the authorization, so whoever settles 0
   * first (the buyer itself, racing the seller's real charge after it was served) cannot void the
   * seller's later charge (review 16, attack 2). A payment we already hold was answered from its row
   * before this (answerExisting: another charge of it is duplicate_settlement).
   */
  private async settleNothing(payment: ResolvedPayment): Promise<SettleOutcome> {
    const client = this.deps.chains.get(payment.network.chainId)!.publicClient;
    const rejection = await zeroChargeRejection(client, payment, this.deps.limits.gasPerSettlementMax);
    if (rejection) return failed(rejection.reason, rejection.message);
    // Another request may be settling a real charge of it right now (a live claim): 0 is still the
    // truthful answer to this one — it moves nothing either way.
    this.deps.log.info({ payer: payment.request.authorization.from, chainId: payment.network.chainId }, "upto settlement of 0: nothing sent, nothing recorded");
    return { success: true, transaction: "", amountAtomic: "0" };
  }

  /**
   * We hold the claim. At most two attempts: the first may join a batch; if its call failed on chain
   * while the authorization stayed unused (a batch neighbour, the payer's own code, a balance moved
   * in between), the payment is claimed again and sent alone, once — within the same budget, after
   * the first attempt's signer slot is handed back.
   */
  private async settleClaimed(row: SettlementRow, payment: ResolvedPayment, deadlineMs: number, caller: SettleCaller): Promise<SettleOutcome> {
    const first = await this.attempt(row, payment, deadlineMs, caller, { batchable: true });
    return first.kind === "answered" ? first.outcome : this.settleAgainAlone(first.row, payment, deadlineMs, caller);
  }

  /**
   * The second and last attempt (see settleClaimed): re-claim atomically, then one transaction of its
   * own. The re-claim takes the permit lane again (the failed row freed it): if another settlement of
   * the owner carrying a permit took it in between, PermitLaneTakenError (429) leaves the row failed
   * and reclaimable, for a retry once that one is final.
   */
  private async settleAgainAlone(failedRow: SettlementRow, payment: ResolvedPayment, deadlineMs: number, caller: SettleCaller): Promise<SettleOutcome> {
    const reclaimed = await this.deps.repo.claim(this.claimOf(payment, failedRow.apiKeyId ?? undefined));
    if (!reclaimed) return this.answerExisting((await this.deps.repo.findById(failedRow.id))!, payment, deadlineMs, caller, { mayRetry: false });
    this.deps.log.warn({ settlementId: failedRow.id, failedTxHash: failedRow.txHash, reason: failedRow.errorReason }, "settlement failed on chain with its authorization unused: settling it again, alone");
    const second = await this.attempt(reclaimed, payment, deadlineMs, caller, { batchable: false });
    return second.kind === "answered" ? second.outcome : this.answerFinal(second.row);
  }

  /**
   * A caller with a daily gas budget reserves this attempt's worst case before anything is signed:
   * its gas limit at the highest fee cap its fee bumps may reach. Without room left the claim is
   * released and the answer is 429.
   */
  private async reserveGas(row: SettlementRow, prepared: PreparedTransaction, caller: SettleCaller): Promise<void> {
    if (!caller.apiKeyId || caller.dailyGasBudgetWei === undefined) return;
    const worstCaseWei = prepared.gasLimit * bumpedFeeCapPerGas(prepared.maxFeePerGas, this.deps.limits);
    const reserved = await this.deps.gasBudget.reserve({ settlementId: row.id, attempt: row.attempt, apiKeyId: caller.apiKeyId, dailyBudgetWei: caller.dailyGasBudgetWei, worstCaseWei });
    if (!reserved) {
      throw new FacilitatorError(ReasonCode.gasBudgetExhausted, `this API key's daily gas budget (${caller.dailyGasBudgetWei} wei) has no room for a settlement that may cost ${worstCaseWei} wei`);
    }
  }

  /**
   * A payer may have at most IN_FLIGHT_PER_PAYER_MAX unfinished settlements on a chain: one EIP-7702
   * delegation set after they were simulated makes all of them fail on chain at once, at our
   * expense. Counted before the claim (a burst may overshoot by its own concurrency, no more).
   */
  private async refuseIfPayerBusy(payment: ResolvedPayment): Promise<void> {
    const max = this.deps.limits.inFlightPerPayerMax;
    const key = { chainId: payment.network.chainId, asset: payment.asset.address, payer: payment.request.authorization.from };
    if ((await this.deps.repo.unfinishedForPayer(key, max)) < max) return;
    throw new FacilitatorError(ReasonCode.payerBusy, `payer ${key.payer} has ${max} settlements unfinished on this chain (IN_FLIGHT_PER_PAYER_MAX); retry when some are final`);
  }

  /**
   * A payer's concurrent payments each pass their simulation alone at `latest`, where the others are
   * still pending: together they may need more than its balance (or its allowance to Permit2), and
   * every one past what it has would be a reverted transaction of ours — a whole one each for
   * Permit2 (never batched), repeatable every block at no cost to the payer (review 16 attack 1).
   * So before it is sent, a settlement's value is reserved against the payer's funds, atomically
   * across instances (SettlementsRepository.reserveFunds: the payer's advisory lock, the sum of its
   * other unfinished reserved settlements of the token, whatever their age). Alone, it is reserved
   * without reading the chain, and its own simulation decides. With others, the payer's funds are
   * read (shared) and it is reserved if they cover it on top of them; if not it waits — no signer
   * leased — until one of them is final and tries again: an earlier one mined but not yet final is
   * counted twice (its value, and gone from the balance), and waiting, not refusing, is what keeps a
   * payer funded for exactly its payments from being turned away. Its own simulation then runs on
   * what they left. Still short when the budget (or the rounds, bounded) ends: 429 payer_busy,
   * retryable, nothing sent — the authorization is unused, so no final-looking failure is answered.
   */
  private async reserveFunds(reads: SharedChainReads, row: SettlementRow, payment: ResolvedPayment, deadlineMs: number): Promise<void> {
    const method = transferMethodDriver(payment.request.transferMethod);
    const roundsMax = 2 * this.deps.limits.inFlightPerPayerMax + 2;
    // One reservation of a payer at a time per instance: the others queue here, not on a pooled
    // connection waiting for the payer's advisory lock (a payer's burst must not drain the pool).
    const lockKey = fundsLockKey(row);
    let funds: { read: PayerFunds; since: Date } | undefined;
    let shortfall: Rejection | undefined;
    let oneAtATime = false;
    for (let round = 0; round < roundsMax; round += 1) {
      const known = funds;
      // Judged under the payer's lock; what it found short is kept for the answer.
      const fits = (others: ReservedFunds): boolean => {
        if (others.count === 0) return true;
        // A payer one of whose own calls failed on chain lately (payerOneAtATime below): only alone.
        if (others.oneAtATime) return false;
        if (known === undefined) return false;
        shortfall = method.fundsShortfall(known.read, payment, others);
        return shortfall === undefined;
      };
      const attempt = await this.fundsReservations.run(lockKey, () =>
        this.deps.repo.reserveFunds(row, fits, { countFinalSince: known?.since, oneAtATimeWindowMs: this.deps.limits.payerOneAtATimeMs }),
      );
      // Reserved; or, with nobody else reserved, the row is no longer this attempt's claim (the next
      // step finds out what became of it).
      if (attempt.reserved || attempt.others.count === 0) return;
      oneAtATime = attempt.others.oneAtATime;
      if (!oneAtATime && known === undefined) {
        // Read after that sum: what went final before it is spent in what is read (a lagging node
        // aside), and what goes final after it is counted next round (countFinalSince).
        funds = { read: await method.readFunds(reads, payment), since: attempt.at };
        continue;
      }
      funds = undefined; // read again after the wait: what the others took, or left
      if (this.deps.clock.nowMs() >= deadlineMs) break;
      // None to wait on: the others went final between the sum and the look-up; look again.
      if (!attempt.waitOn) continue;
      const waited = await this.deps.rowWaiters.wait(attempt.waitOn.id, attempt.waitOn, (latest) => latest === undefined || isFinal(latest.status), deadlineMs);
      if (waited.kind === "full") await sleep(Math.max(0, Math.min(fundsWaitBackoffMs, deadlineMs - this.deps.clock.nowMs())));
    }
    if (oneAtATime) {
      throw new FacilitatorError(
        ReasonCode.payerBusy,
        `one of payer ${row.payer}'s settlement calls failed on chain recently, so it has one settlement at a time (PAYER_ONE_AT_A_TIME_MS) and another is still unfinished; retry when it is final`,
      );
    }
    throw new FacilitatorError(
      ReasonCode.payerBusy,
      `the payer's funds do not cover its unfinished settlements and this one (${shortfall?.message ?? "still short"}); retry when they are final`,
    );
  }

  /**
   * A payer with code at its address (smart wallet, EIP-7702 delegate) can pass every simulation
   * and still fail on chain at our expense — its code sees a different block, or flips a switch in
   * between. Once one of its settlements failed on chain while it had code (recorded in finalize),
   * the payer is refused for PAYER_CODE_COOLDOWN_MS, nothing sent — whether it has code now or not:
   * an EIP-7702 key can drop its code between rounds. Keys that never had code are never recorded.
   */
  private async payerCoolingDown(payment: ResolvedPayment): Promise<Rejection | undefined> {
    const cooldownMs = this.deps.limits.payerCodeCooldownMs;
    if (cooldownMs === 0) return undefined;
    if (!(await this.deps.payerFailures.codeFailureWithin(payment.network.chainId, payment.request.authorization.from, cooldownMs))) return undefined;
    return {
      reason: ReasonCode.payerCooldown,
      message: `a settlement from ${payment.request.authorization.from} failed on chain recently although its simulation passed: its settlements are refused for ${cooldownMs / 1000} s`,
    };
  }

  /**
   * An attempt is over: its reservation, if it took one, becomes what it really cost. Idempotent,
   * and keyed by (settlement, attempt) alone: the reserving caller's key may differ from the row's.
   */
  async releaseGas(row: Pick<SettlementRow, "id" | "attempt">, spentWei: bigint): Promise<void> {
    await this.deps.gasBudget.settle(row.id, row.attempt, spentWei).catch((error: unknown) => {
      // The reservation stays held (counted at its worst case) until the day ends: never an overspend.
      this.deps.log.warn({ settlementId: row.id, err: error }, "could not settle a gas reservation");
    });
  }

  /**
   * Our call ran and paid nobody although it simulated fine, and the payer is why (verdict.payersDoing): it
   * has one settlement at a time for PAYER_ONE_AT_A_TIME_MS (any payer: a key without code moves its
   * funds away, or burns its nonces, between our simulation and our transaction — every one of its
   * settlements in flight fails at once), and it is cooled down (PAYER_CODE_COOLDOWN_MS) if its
   * address had code. Written before the row goes final, so whoever reserves after that sees it.
   * Best effort: without it the payer is only not limited (our gas is still capped per request).
   */
  private async recordPayerFailure(row: SettlementRow, payerHadCode: boolean): Promise<void> {
    const { payerFailures } = this.deps;
    await Promise.all([payerFailures.recordFailedCall(row.chainId, row.payer), payerHadCode ? payerFailures.recordCodeFailure(row.chainId, row.payer) : undefined]).then(
      () => this.deps.log.info({ settlementId: row.id, payer: row.payer, chainId: row.chainId, payerHadCode }, "payer's call failed on chain: one settlement at a time for a while"),
      (error: unknown) => this.deps.log.warn({ settlementId: row.id, payer: row.payer, err: error }, "could not record a payer's on-chain failure"),
    );
  }

  private claimOf(payment: ResolvedPayment, apiKeyId: string | undefined): NewSettlement {
    const { request } = payment;
    const key = authorizationKeyOf(payment);
    return {
      chainId: key.chainId,
      nonceContract: key.nonceContract,
      asset: payment.asset.address,
      payer: key.payer,
      nonce: key.nonce,
      scheme: payment.scheme,
      transferMethod: request.transferMethod,
      payTo: request.requirements.payTo,
      valueAtomic: payment.settleAmountAtomic,
      permittedAtomic: request.authorization.valueAtomic,
      validAfterSeconds: request.authorization.validAfterSeconds,
      validBeforeSeconds: request.authorization.validBeforeSeconds,
      authorizationDigest: payment.digest,
      signature: request.signature,
      x402Version: request.x402Version,
      network: request.requirements.network,
      leaseMs: this.deps.limits.settleBudgetMs + claimLeaseMarginMs,
      apiKeyId,
      eip2612Permit: transferMethodDriver(request.transferMethod).takesPermitLane(payment),
    };
  }

  /**
   * One attempt with the claim we hold: prepare, reserve, sign, send, and wait for the verdict.
   * It holds its signer's lease until the transaction is sent, then a share of that transaction's
   * in-flight slot until its verdict. `batchable: false` keeps it out of any batch.
   */
  private async attempt(row: SettlementRow, payment: ResolvedPayment, deadlineMs: number, caller: SettleCaller, options: { batchable: boolean }): Promise<AttemptEnd> {
    const { deps } = this;
    const chain = deps.chains.get(payment.network.chainId)!;
    const client = chain.publicClient;
    // Whether the RPC serves sync sends is asked (once) while this settlement is prepared.
    chain.sends.warm();
    let signerLease: SignerLease | undefined;
    let pendingSigning: PendingSigning | undefined;
    try {
      let sent: SentSettlement;
      try {
        // Before a signer is leased: this may wait for the payer's other settlements to finish.
        await this.reserveFunds(chain.sharedReads, row, payment, deadlineMs);
        // An upto permit is good only when its witness's facilitator sends it (the proxy checks msg.sender).
        const witnessFacilitator = payment.scheme === "upto" ? payment.request.permit2?.witness.facilitator : undefined;
        signerLease = witnessFacilitator ? await deps.signers.acquireFor(witnessFacilitator, deadlineMs) : await deps.signers.acquire(deadlineMs);
        const account = signerLease.account;
        const prepared = await prepareTransaction(client, chain.sharedReads, payment, account, deps.limits, deps.dataSuffix);
        if (!isPrepared(prepared)) {
          const failedRow = await deps.repo.transition(row.id, "failed", { errorReason: prepared.reason, errorMessage: prepared.message }, { attempt: row.attempt });
          return answered(failed(prepared.reason, prepared.message, failedRow));
        }
        const cooling = await this.payerCoolingDown(payment);
        if (cooling) {
          const failedRow = await deps.repo.transition(row.id, "failed", { errorReason: cooling.reason, errorMessage: cooling.message }, { attempt: row.attempt });
          return answered(failed(cooling.reason, cooling.message, failedRow));
        }
        await this.reserveGas(row, prepared, caller);
        const signerKey = `${payment.network.chainId}:${account.address}`;
        const alone = !(options.batchable && (await this.mayBatch(payment, prepared, client)));
        const method = transferMethodDriver(payment.request.transferMethod);
        const invalidAtSigning = (now: bigint) => method.checkValidityAtSigning(payment.request, now, prepared.call);
        pendingSigning = { row, account, chainId: payment.network.chainId, prepared, deadlineMs, alone, invalidAtSigning };
        sent = await this.sender.submit(signerKey, pendingSigning);
        // Sent (or left out): the signer may take another settlement; its transaction's slot bounds what is in flight.
        signerLease.release();
        if (sent.kind === "unsent") throw sent.error;
        if (sent.kind === "expired") {
          // Refused unsigned, as the window check at the claim would refuse it now: the claim is failed
          // (it could only revert), and what was reserved for its gas is handed back.
          const failedRow = await deps.repo.failClaim(row.id, { errorReason: sent.rejection.reason, errorMessage: sent.rejection.message }, { attempt: row.attempt });
          if (failedRow) await this.releaseGas(failedRow, 0n);
          return answered(failed(sent.rejection.reason, sent.rejection.message, failedRow));
        }
      } catch (error) {
        // Nothing reached the chain: free the authorization for a later attempt, then report the fault.
        if (error instanceof SignerCannotPayError) {
          deps.log.error({ signer: error.signer, error: error.message }, "signer cannot pay for gas");
          deps.metrics?.signerCannotPay(error.signer);
        }
        // Only while still `claimed`: if the signing transaction committed and only its answer was
        // lost, the row is `signed` and the watcher broadcasts it (never failed, never a nonce gap).
        const released = await deps.repo
          .failClaim(row.id, { errorReason: reasonOfUnsent(error), errorMessage: unsentMessage(error) }, { attempt: row.attempt })
          .catch((writeError: unknown) => deps.log.warn({ settlementId: row.id, err: writeError }, "could not release a claim after a fault"));
        if (released) await this.releaseGas(released, 0n);
        throw error;
      }
      if (sent.kind === "not-ours") return answered(await this.answerExisting((await deps.repo.findById(row.id))!, payment, deadlineMs, caller, { mayRetry: false }));
      return await this.answerSent(sent, deadlineMs);
    } finally {
      signerLease?.release();
      pendingSigning?.releaseTransactionShare?.();
    }
  }

  /**
   * Batching is on, BatchSettler exists on the chain, and the payer is a plain key: a smart wallet's
   * (or an EIP-7702 key's) signature check is code we do not control; a counterfactual one is a
   * Multicall3 transaction already. (A key that delegates itself after this check is bounded by
   * BatchSettler's per-call gas limit.)
   */
  private async mayBatch(payment: ResolvedPayment, prepared: PreparedTransaction, client: PublicClient): Promise<boolean> {
    // Permit2 settlements go alone (see transfer-methods/permit2.ts).
    if (!transferMethodDriver(payment.request.transferMethod).batchable) return false;
    if (this.deps.limits.settleBatchMax <= 1 || payment.payerKind !== "eoa" || prepared.payerHasCode) return false;
    const deployed = await this.batchSettler.isDeployed(payment.network.chainId, client);
    if (!deployed && !this.warnedNoBatchSettler.has(payment.network.chainId)) {
      this.warnedNoBatchSettler.add(payment.network.chainId);
      // Said once at start too (startup-checks.ts: a warning only when SETTLE_BATCH_MAX was set).
      this.deps.log.info(
        { chainId: payment.network.chainId, batchSettler: batchSettlerAddress },
        "BatchSettler is not deployed on this chain (x402-facilitator batch-settler deploy): settling one per transaction",
      );
    }
    return deployed;
  }

  /**
   * Settlements that queued for the same signer while its previous transaction was being signed
   * and sent (or just one): the batchable ones share BatchSettler transactions (batchTransaction,
   * split to stay within BATCH_GAS_MAX), each other one gets a transaction of its own. Nonce,
   * signature and rows are persisted before each transaction is broadcast; the queue waits here,
   * without holding a pooled connection. Never throws: every item gets its answer.
   */
  private async sendQueued(items: readonly PendingSigning[], answerNow: (index: number, result: SentSettlement) => void): Promise<SentSettlement[]> {
    // A request whose budget ran out while it queued leaves unsigned (its caller gets a 503 and the
    // authorization stays free), so queueing behind slow broadcasts never outlasts the budget.
    // Checked again before each group: the groups before it may have taken a while to send.
    const budgetSpent = new SignersBusyError("the settle budget ran out while waiting for the signer; retry shortly");
    const answers = new Map<PendingSigning, SentSettlement>();
    // Each item is answered as soon as its fate is known, not when the whole queue is sent: a sent
    // settlement must go on to its verdict (which frees its transaction's slot) while later groups
    // wait for a slot — else they would wait for slots that only their own flush could free.
    const answer = (item: PendingSigning, result: SentSettlement) => {
      answers.set(item, result);
      answerNow(items.indexOf(item), result);
    };
    const batchable = items.filter((item) => !item.alone);
    const groups = [...splitIntoBatches(batchable, this.deps.limits.batchGasMax), ...items.filter((item) => item.alone).map((item) => [item])];
    // And one whose authorization would expire before its transaction is mined leaves unsigned too
    // (answered with its window's code): signed, it could only revert at our cost (review 16 attack 3).
    const dropExpired = (group: readonly PendingSigning[]) => {
      const nowMs = this.deps.clock.nowMs();
      const now = nowSeconds(this.deps.clock);
      return group.filter((item) => {
        if (item.deadlineMs <= nowMs) {
          answer(item, { kind: "unsent", error: budgetSpent });
          return false;
        }
        const rejection = item.invalidAtSigning(now);
        if (rejection) answer(item, { kind: "expired", rejection });
        return rejection === undefined;
      });
    };
    // One transaction after the other, each in a free in-flight slot of the signer (waited for
    // within the group's budgets). A failure before a group was persisted fails that group only:
    // the groups already persisted (and maybe sent) must keep their answers.
    for (const group of groups) {
      let live = dropExpired(group);
      if (live.length === 0) continue;
      const { chainId, account } = live[0]!;
      const slot = await this.deps.signers.acquireTransaction(chainId, account.address, Math.max(...live.map((item) => item.deadlineMs)));
      live = dropExpired(live);
      if (!slot || live.length === 0) {
        slot?.shares(0);
        continue;
      }
      const sent = await this.sendGroup(live, slot).catch((error: unknown) => live.map(() => ({ kind: "unsent" as const, error })));
      live.forEach((item, index) => answer(item, sent[index]!));
    }
    return items.map((item) => answers.get(item)!);
  }

  /** One transaction for the group (a plain token call when it holds one settlement), in `slot`. */
  private async sendGroup(items: readonly PendingSigning[], slot: TransactionSlot): Promise<SentSettlement[]> {
    let signed: SettlementRow[];
    try {
      signed = await this.persistSigned(items);
    } catch (error) {
      slot.shares(0);
      throw error;
    }
    // The slot is held until every settlement in the transaction has its verdict (or gave up waiting).
    const shares = slot.shares(signed.length);
    signed.forEach((row, index) => {
      items.find((item) => item.row.id === row.id)!.releaseTransactionShare = shares[index];
    });
    if (signed.length > 1) {
      this.deps.log.info({ settlements: signed.length, txHash: signed[0]!.txHash }, "settlements batched into one transaction");
      crashPoint("after-batch-sign");
    }
    crashPoint("after-sign");
    // A sync send waits for its receipt until the first of its rows' budgets ends; past that each
    // row polls for the receipt within its own (see sendSync).
    const untilMs = Math.min(...items.map((item) => item.deadlineMs));
    const sent = signed.length > 0 ? await this.broadcastSigned(signed, untilMs) : [];
    return items.map((item) => sent.find((entry) => "row" in entry && entry.row.id === item.row.id) ?? { kind: "not-ours" as const });
  }

  /** Takes one tx nonce and persists one signed transaction for the items' rows still claimed. */
  private async persistSigned(items: readonly PendingSigning[]): Promise<SettlementRow[]> {
    const { account, chainId } = items[0]!;
    const signed = await allocateNonceAndPersistSigned(this.deps.db, {
      chainId,
      signer: account.address,
      chainPendingNonce: Math.max(...items.map((item) => item.prepared.chainPendingNonce)),
      settlementIds: items.map((item) => item.row.id),
      sign: async (txNonce, claimedIds) => {
        const transaction = batchTransaction(items.filter((item) => claimedIds.includes(item.row.id)).map((item) => item.prepared));
        const signed = await signSettlementTransaction(account, chainId, transaction, txNonce, this.deps.dataSuffix);
        return { ...signed, gasLimit: transaction.gasLimit };
      },
    });
    if (signed.length > 0) this.deps.metrics?.observeSettlementTransaction(signed.length);
    return signed;
  }

  /**
   * Broadcasts the rows' one signed transaction and records what the node said, once for all of
   * them. Through an RPC that serves eth_sendRawTransactionSync (SEND_MODE, src/chain/send-routes.ts)
   * it is a sync send: this returns as soon as it is sent (the rows' answers come with the receipt,
   * or from one plain send of the same bytes at `untilMs`); otherwise a plain send. Never throws: the transaction may be out,
   * so every row must still get its answer.
   */
  private async broadcastSigned(rows: readonly SettlementRow[], untilMs: number): Promise<SentSettlement[]> {
    const first = rows[0]!;
    const chain = this.deps.chains.get(first.chainId)!;
    // With no budget left there is no receipt to wait for: a plain send, then one look for the receipt.
    const route = untilMs > this.deps.clock.nowMs() ? await chain.sends.syncRoute() : undefined;
    if (route || untilMs > this.deps.clock.nowMs()) this.logSendRoute(first.chainId, route);
    if (route) {
      const answer = this.sendSync(route, rows, untilMs);
      return rows.map((row, index) => ({ kind: "sending", row, answer: answer.then((answers) => answers[index]!) }));
    }
    const broadcast = await broadcastRawTransaction(chain.publicClient, first.rawTx as Hex);
    crashPoint("after-broadcast");
    return this.recordBroadcast(rows, broadcast);
  }

  /**
   * One sync send for the rows' transaction, and what it means for each row. A node timeout is not
   * a failure: the transaction is in its pool, the rows are submitted and their requests poll for
   * the receipt within their budgets. No answer by `untilMs` (the first of the rows' deadlines), or
   * a lost one, is followed by a plain send of the same bytes (the node says "already known" if it
   * had them, and gets them if it did not), so the rows are recorded as after a plain send:
   * submitted — each polls for the receipt within what is left of its own budget, then answers
   * settlement_pending with the hash and the watcher finishes it — or refused. A URL that turns out
   * not to serve the method gets a plain send. Never rejects.
   */
  private async sendSync(route: SyncSendRoute, rows: readonly SettlementRow[], untilMs: number): Promise<NodeAnswer[]> {
    const { deps } = this;
    const first = rows[0]!;
    const client = deps.chains.get(first.chainId)!.publicClient;
    const rawTx = first.rawTx as Hex;
    try {
      const sent = await broadcastRawTransactionSync(route, rawTx, untilMs - deps.clock.nowMs());
      crashPoint("after-broadcast");
      switch (sent.kind) {
        case "included":
          return await this.recordBroadcast(rows, { kind: "accepted", alreadyKnown: false }, sent.receipt);
        case "accepted":
          deps.log.info({ settlementIds: rows.map((row) => row.id), txHash: first.txHash, answer: sent.message }, "sync send: in the node's pool, not included yet; waiting for the receipt");
          return await this.recordBroadcast(rows, sent);
        case "no-answer":
          deps.log.warn({ settlementIds: rows.map((row) => row.id), txHash: first.txHash }, "sync send not answered within the settle budget; sending the same bytes again to learn whether the node has them");
          return await this.recordBroadcast(rows, await broadcastRawTransaction(client, rawTx));
        case "unsupported":
          route.unsupported();
          return await this.recordBroadcast(rows, await broadcastRawTransaction(client, rawTx));
        case "unknown":
          // The bytes may be out: sending them again is harmless (same hash) and learns what the node has.
          deps.log.warn({ settlementIds: rows.map((row) => row.id), txHash: first.txHash, error: sent.message }, "sync send failed (transport, or an error that is not a known refusal); sending the same bytes again plainly");
          return await this.recordBroadcast(rows, await broadcastRawTransaction(client, rawTx));
      }
    } catch (error) {
      deps.log.error({ settlementIds: rows.map((row) => row.id), txHash: first.txHash, err: error }, "sync send failed; the watcher will finish it");
      return rows.map((row) => ({ kind: "pending", row }));
    }
  }

  private logSendRoute(chainId: number, route: SyncSendRoute | undefined): void {
    const described = route ? `sync ${route.url}` : "async";
    if (this.loggedSendRoute.get(chainId) === described) return;
    this.loggedSendRoute.set(chainId, described);
    this.deps.log.info(
      { chainId, sendMode: this.deps.chains.get(chainId)!.sends.mode, via: route?.url },
      route ? "settlement transactions go out with eth_sendRawTransactionSync (the node answers with the receipt)" : "settlement transactions go out with eth_sendRawTransaction and receipt polling",
    );
  }

  /** Records what the node said about the rows' one transaction, once for all of them. Never throws. */
  private async recordBroadcast(rows: readonly SettlementRow[], broadcast: BroadcastResult, receipt?: TransactionReceipt): Promise<NodeAnswer[]> {
    const { deps } = this;
    const first = rows[0]!;
    const ids = rows.map((row) => row.id);
    if (broadcast.kind === "unknown") {
      deps.log.warn({ settlementIds: ids, txHash: first.txHash, error: broadcast.message }, "broadcast outcome unknown; the watcher will rebroadcast");
      return rows.map((row) => ({ kind: "pending", row }));
    }
    if (broadcast.kind === "rejected") {
      try {
        await this.recordRefusal(first, broadcast);
      } catch (error) {
        // Nothing recorded: the rows stay `signed` with their bytes and the nonce stays taken, as
        // after a crash. The transaction exists, so the answer is settlement_pending with its hash;
        // the watcher sends it again and records the node's refusal.
        deps.log.error({ settlementIds: ids, txHash: first.txHash, err: error }, "could not record the node's refusal");
        return rows.map((row) => ({ kind: "pending", row }));
      }
      return rows.map((row) => ({ kind: "rejected", row, signerUnfunded: broadcast.signerUnfunded }));
    }
    try {
      const submitted = await deps.repo.markBroadcastMany(ids);
      return rows.map((row) => ({ kind: "submitted", row: submitted.find((entry) => entry.id === row.id) ?? row, ...(receipt ? { receipt } : {}) }));
    } catch (error) {
      // The transaction is out: whatever failed now (Postgres), the caller must get its hash, never
      // "nothing was sent" (ARCHITECTURE.md pitfall 3). The rows stay unfinished; the watcher completes them.
      deps.log.error({ settlementIds: ids, txHash: first.txHash, err: error }, "settlement broadcast, then its bookkeeping failed");
      return rows.map((row) => ({ kind: "pending", row }));
    }
  }

  /** One row's answer once its transaction was signed and handed to the node (or not). */
  private async answerSent(sent: Exclude<SentSettlement, { kind: "not-ours" | "unsent" | "expired" }>, deadlineMs: number): Promise<AttemptEnd> {
    const { row } = sent;
    switch (sent.kind) {
      case "sending":
        // Bounded: the sync send waits until the first budget of its rows ends, then one plain send at most.
        return this.answerSent(await sent.answer, deadlineMs);
      case "pending":
        return answered(await this.answerPending(row));
      case "rejected":
        if (sent.signerUnfunded) throw new SignerCannotPayError(row.signer!, `signer ${row.signer} cannot pay for gas on chain ${row.chainId}: fund it`);
        return answered(failed(ReasonCode.unexpectedSettleError, "the node refused the settlement transaction"));
      case "submitted":
        try {
          crashPoint("before-receipt");
          return await this.awaitOutcome(row, deadlineMs, sent.receipt);
        } catch (error) {
          // The transaction is out: the caller gets its hash (ARCHITECTURE.md pitfall 3); the watcher completes the row.
          this.deps.log.error({ settlementId: row.id, txHash: row.txHash, err: error }, "settlement broadcast, then its bookkeeping failed");
          return answered(await this.answerPending(row));
        }
    }
  }

  /** settlement_pending with the hash; recording that it went out is best effort (Postgres may be down). */
  private async answerPending(row: SettlementRow): Promise<SettleOutcome> {
    await this.deps.repo.markPendingAnswered(row).catch((error: unknown) => {
      this.deps.log.warn({ settlementId: row.id, err: error }, "could not record the settlement_pending answer");
    });
    return pending(row);
  }

  /**
   * Waits (bounded) for the chain's verdict on a broadcast row and answers it — unless the call
   * failed while the authorization stayed unused and budget is left: then the payment may go again.
   */
  private async awaitOutcome(row: SettlementRow, deadlineMs: number, receipt?: TransactionReceipt): Promise<AttemptEnd> {
    const step = await this.advance(row, { waitMs: Math.max(0, deadlineMs - this.deps.clock.nowMs()), claimSuccess: true, receipt });
    if (step.kind === "unknown") return answered(await this.answerPending(step.row));
    if (step.kind === "refused") return answered(failed(ReasonCode.unexpectedSettleError, "the node refused the settlement transaction"));
    const { row: finalRow, successClaimed } = step;
    if (successClaimed) return answered(succeeded(finalRow));
    // Our copy was stale: the row was claimed again meanwhile and its next attempt is running.
    if (!isFinal(finalRow.status)) return answered(duplicate(finalRow));
    if (isReclaimable(finalRow) && this.deps.clock.nowMs() < deadlineMs) return { kind: "payable-again", row: finalRow };
    return answered(await this.answerFinal(finalRow));
  }

  /**
   * One step of an unfinished row that has a transaction, the same for a request and the watcher:
   * send the stored bytes again if they may never have reached a node (`signed`; harmless if they
   * did), ask the chain for the verdict — waiting at most `waitMs` — and write it; or, when no
   * receipt exists and the node refuses the bytes, record the refusal (the rows fail, their
   * authorizations free, the nonce handed back). `receipt`: the transaction's receipt, already in
   * hand (a sync send's answer): the verdict is read from it instead of asking for it.
   */
  async advance(row: SettlementRow, options: { waitMs: number; claimSuccess: boolean; receipt?: TransactionReceipt }): Promise<Advanced> {
    const client = this.deps.chains.get(row.chainId)!.publicClient;
    let refused: Extract<BroadcastResult, { kind: "rejected" }> | undefined;
    if (row.status === "signed") {
      const resent = await broadcastRawTransaction(client, row.rawTx as Hex);
      if (resent.kind === "accepted") row = (await this.deps.repo.markBroadcast(row)) ?? row;
      if (resent.kind === "rejected") refused = resent;
    }
    const verdict = await chainVerdict(client, row, refused ? 0 : options.waitMs, options.receipt);
    if (verdict.kind !== "unknown") return { kind: "final", ...(await this.finalize(row, verdict, options.claimSuccess)) };
    if (!refused) return { kind: "unknown", row };
    // Another worker may have sent the same bytes meanwhile (the row is submitted, not refused):
    // only a refusal that failed this row counts.
    if (!(await this.recordRefusal(row, refused))) return { kind: "unknown", row: (await this.deps.repo.findById(row.id)) ?? row };
    return { kind: "refused", row };
  }

  /**
   * The node refused a signed transaction: every row it carries fails (nothing was sent, so their
   * authorizations are free and nothing was spent) and its nonce goes back unless it was consumed.
   */
  private async recordRefusal(row: SettlementRow, refused: Extract<BroadcastResult, { kind: "rejected" }>): Promise<boolean> {
    this.deps.log.error({ settlementId: row.id, signer: row.signer, txHash: row.txHash, error: refused.message }, "node refused the settlement transaction: failed, nonce handed back");
    const failedRows = await refuseSignedTransaction(this.deps.db, {
      chainId: row.chainId,
      signer: row.signer!,
      txNonce: row.txNonce!,
      txHash: row.txHash!,
      releaseNonce: !refused.nonceConsumed,
      errorReason: ReasonCode.unexpectedSettleError,
      errorMessage: refused.message,
    });
    // Exactly the attempts this refusal ended: nothing of theirs was sent, so nothing was spent.
    for (const failedRow of failedRows) await this.releaseGas(failedRow, 0n);
    return failedRows.some((failedRow) => failedRow.id === row.id);
  }

  /**
   * Writes the chain's verdict; if another worker wrote first, its row is the truth. With
   * `claimSuccess`, the one success answer is taken in the same UPDATE that confirms the row, so no
   * duplicate request can take it in between.
   */
  async finalize(
    row: SettlementRow,
    verdict: Exclude<ChainVerdict, { kind: "unknown" }>,
    claimSuccess = false,
  ): Promise<{ row: SettlementRow; successClaimed: boolean }> {
    if (verdict.kind === "failed" && verdict.payersDoing) await this.recordPayerFailure(row, verdict.payerHadCode);
    const written =
      verdict.kind === "paid"
        ? await this.deps.repo.confirm(row.id, {
            attempt: row.attempt,
            claimSuccess,
            settledTxHash: verdict.txHash,
            blockNumber: Number(verdict.blockNumber),
            gasUsed: Number(verdict.gasUsed),
            gasCostWei: verdict.gasCostWei.toString(),
          })
        : await this.deps.repo.transition(row.id, "failed", {
            errorReason: verdict.reason,
            errorMessage: verdict.message,
            gasCostWei: verdict.gasCostWei?.toString() ?? null,
            authorizationUnused: verdict.authorizationUnused,
            leaseUntil: null,
          }, { attempt: row.attempt });
    if (written) {
      this.deps.log.info({ settlementId: row.id, status: written.status, txHash: written.settledTxHash ?? written.txHash }, "settlement final");
      await this.releaseGas(written, verdict.gasCostWei ?? 0n);
    }
    return {
      row: written ?? (await this.deps.repo.findById(row.id))!,
      successClaimed: written !== undefined && claimSuccess && written.status === "confirmed",
    };
  }

  private async answerFinal(row: SettlementRow): Promise<SettleOutcome> {
    if (row.status === "confirmed" && (await this.deps.repo.takeSuccessAnswer(row.id))) return succeeded(row);
    return outcomeOfFinalRow(row);
  }

  /**
   * Another request holds (or held) this authorization. The identical payment after a
   * settlement_pending answer reconciles with the broadcast transaction (the v2 SDK retries once
   * and expects its real outcome); anything else is a duplicate and never sends a transaction.
   */
  private async answerExisting(
    row: SettlementRow,
    payment: ResolvedPayment,
    deadlineMs: number,
    caller: SettleCaller,
    options: { mayRetry: boolean } = { mayRetry: true },
  ): Promise<SettleOutcome> {
    // The identical payment: the same signed authorization, and (upto) the same charge.
    if (row.authorizationDigest !== payment.digest || row.valueAtomic !== payment.settleAmountAtomic.toString()) return duplicate(row);
    // A 0 charge recorded final by an earlier version (before 0 charges were kept out of Postgres)
    // is answered as it was, every time: nothing was paid, so nothing is credited twice.
    if (isRecordedZeroCharge(row)) return succeeded(row);
    // The identical payment may receive the one success answer if nobody has received it yet
    // (after settlement_pending, a crash, or a lost answer); the claimer takes it atomically.
    if (isFinal(row.status)) return this.answerFinal(row);
    const unowned = row.leaseUntil === null || row.leaseUntil.getTime() <= this.deps.clock.nowMs();
    if ((row.pendingAnswered || unowned) && row.txHash) {
      // Reconciling is this request's first attempt: a call that failed with the authorization
      // unused is settled again, alone, as in the request that sent it.
      const reconciled = await this.awaitOutcome(row, deadlineMs);
      if (reconciled.kind === "answered") return reconciled.outcome;
      if (!options.mayRetry) return this.answerFinal(reconciled.row);
      // Sending again is a new decision to pay: screened again (the payer may have been listed since).
      const sanctioned = await this.deps.screen?.(payment);
      if (sanctioned) return failed(sanctioned.reason, sanctioned.message);
      return this.settleAgainAlone(reconciled.row, payment, deadlineMs, caller);
    }
    const waitUntilMs = Math.min(deadlineMs, this.deps.clock.nowMs() + this.deps.limits.duplicateWaitMs);
    const latest = await this.waitForRow(row, (r) => isFinal(r.status) || r.pendingAnswered, waitUntilMs);
    if (isRecordedZeroCharge(latest)) return succeeded(latest);
    return latest.status === "failed" ? outcomeOfFinalRow(latest) : duplicate(latest);
  }

  /**
   * Waits (bounded by `untilMs`) until the row is `done`, without polling Postgres: the owner's
   * write wakes it, handing over the row in this process or through its NOTIFY from another
   * instance (one re-read per instance for all of the row's waiters; store/notifications.ts).
   * At the deadline — or at once when too many already wait — the row as it is now (one read).
   */
  private async waitForRow(row: SettlementRow, done: (row: SettlementRow) => boolean, untilMs: number): Promise<SettlementRow> {
    if (this.deps.clock.nowMs() >= untilMs) return row;
    const waited = await this.deps.rowWaiters.wait(row.id, row, (latest) => latest === undefined || done(latest), untilMs);
    if (waited.kind === "done") return waited.value ?? row;
    return (await this.deps.repo.findById(row.id)) ?? row;
  }
}

/**
 * A row of an upto settlement of 0 recorded final without a transaction — only earlier versions
 * wrote these (settleNothing now records nothing); for a payment, see resolve.ts isZeroCharge.
 */
function isRecordedZeroCharge(row: SettlementRow): boolean {
  return row.status === "confirmed" && row.scheme === "upto" && row.valueAtomic === "0" && row.txHash === null;
}
