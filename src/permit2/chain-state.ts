import type { Address, PublicClient } from "viem";
import { rethrowAsUnavailable, throwIfTransportFailure } from "../chain/rpc-errors.js";
import { permit2Address } from "../contracts/permit2.js";
import type { ResolvedPayment } from "../exact-evm/resolve.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Eip2612Permit, Rejection } from "../protocol/types.js";
import { permit2Abi, permit2TokenAbi } from "./abi.js";
import { permit2Revert, reasonForPermit2Revert, type Permit2Revert } from "./revert-reasons.js";
import { permit2SettlementCall } from "./settle-call.js";

export interface Permit2ChainState {
  /** The nonce's bit in Permit2's bitmap is set: used (by any spender, any token) or invalidated by the owner. */
  nonceUsed: boolean;
  balanceAtomic: bigint;
  /** The owner's ERC-20 allowance to Permit2 (what Permit2's transferFrom spends). */
  allowanceAtomic: bigint;
  simulation: { ok: true } | { ok: false; revert: Permit2Revert } | undefined;
}

/** Whether `nonce`'s bit is set in its bitmap word (word nonce >> 8, bit nonce & 0xff). */
export function nonceBitSet(word: bigint, nonce: bigint): boolean {
  return ((word >> (nonce & 0xffn)) & 1n) === 1n;
}

/** Reads the nonce's bitmap word from Permit2 (at `blockNumber`, default latest) and answers whether the nonce is used. */
export async function permit2NonceUsed(client: PublicClient, owner: Address, nonce: bigint, blockNumber?: bigint): Promise<boolean> {
  const word = await client.readContract({
    address: permit2Address,
    abi: permit2Abi,
    functionName: "nonceBitmap",
    args: [owner, nonce >> 8n],
    ...(blockNumber === undefined ? {} : { blockNumber }),
  });
  return nonceBitSet(word, nonce);
}

/** The EIP-2612 permit to submit with the settlement, when the payload carries a usable one. */
export function eip2612PermitOf(payment: ResolvedPayment): Eip2612Permit | undefined {
  const extension = payment.request.eip2612;
  return extension?.ok ? extension.permit : undefined;
}

/**
 * Everything verify asks the chain about a Permit2 payment, in one round trip (the transport
 * batches concurrent calls): the nonce's bit, the owner's balance and allowance to Permit2, and,
 * with `simulate`, a simulation of the proxy call from `simulate.from` with at most
 * `simulate.gasMax` gas. The caller names the sender: upto's proxy lets only the witness's
 * facilitator call it, so for upto that is the witness's facilitator. With an EIP-2612 permit in
 * the payload, settleWithPermit is simulated: what a settle sends when the allowance is short, and
 * it passes whenever a plain settle would (a failed permit is tolerated).
 */
export async function readPermit2ChainState(client: PublicClient, payment: ResolvedPayment, options: { simulate?: { from: Address; gasMax: bigint } } = {}): Promise<Permit2ChainState> {
  const permit = payment.request.permit2!;
  const token = payment.asset.address;
  const [nonceUsed, balanceAtomic, allowanceAtomic, simulation] = await Promise.all([
    permit2NonceUsed(client, permit.owner, permit.nonce).catch(rethrowAsUnavailable("reading the Permit2 nonce bitmap")),
    client.readContract({ address: token, abi: permit2TokenAbi, functionName: "balanceOf", args: [permit.owner] }).catch(rethrowAsUnavailable("reading the payer's balance")),
    client.readContract({ address: token, abi: permit2TokenAbi, functionName: "allowance", args: [permit.owner, permit2Address] }).catch(rethrowAsUnavailable("reading the payer's allowance to Permit2")),
    options.simulate ? simulatePermit2Settlement(client, payment, options.simulate.from, options.simulate.gasMax, eip2612PermitOf(payment)) : Promise.resolve(undefined),
  ]);
  return { nonceUsed, balanceAtomic, allowanceAtomic, simulation };
}

async function simulatePermit2Settlement(client: PublicClient, payment: ResolvedPayment, account: Address, gasMax: bigint, eip2612: Eip2612Permit | undefined): Promise<Permit2ChainState["simulation"]> {
  const call = permit2SettlementCall(payment, eip2612);
  try {
    await client.call({ ...call, account, gas: gasMax });
    return { ok: true };
  } catch (error) {
    throwIfTransportFailure(error, "simulating the Permit2 settlement");
    return { ok: false, revert: permit2Revert(error) };
  }
}

/**
 * The chain's answer on a Permit2 payment: a used nonce (ours: 2.27 finds it only through a failed
 * simulation), a live claim here, then the simulation; a failed one is explained as 2.27's
 * diagnosePermit2SimulationFailure does — the balance, then the allowance to Permit2 — else by the
 * revert's own error.
 */
export function judgePermit2State(payment: ResolvedPayment, state: Permit2ChainState, claimed: boolean): Rejection | undefined {
  const permit = payment.request.permit2!;
  if (state.nonceUsed) return { reason: ReasonCode.permit2InvalidNonce, message: `Permit2 nonce ${permit.nonce} of ${permit.owner} is already used on chain` };
  if (claimed) return { reason: ReasonCode.permit2InvalidNonce, message: `Permit2 nonce ${permit.nonce} of ${permit.owner} is already being settled` };
  if (!state.simulation || state.simulation.ok) return undefined;
  return explainPermit2Failure(payment, state, state.simulation.revert);
}

/**
 * Verify's chain round trip for an upto charge of 0, which sends nothing to prove the payment good
 * (2.27 re-verifies and simulates the cap here too): the nonce's bit clear, and the proxy call for
 * the whole cap (`permitted`, not the 0 charged, which the proxy would refuse anyway) simulated from
 * the witness's facilitator — so an unfunded, unapproved or used permit is refused as /verify
 * refuses it, and a 0 charge is never a free success. A live claim is not asked here: the engine
 * answers a payment it holds from its row before it gets to a 0 charge.
 */
export async function zeroChargeRejection(client: PublicClient, payment: ResolvedPayment, gasMax: bigint): Promise<Rejection | undefined> {
  const permit = payment.request.permit2!;
  const atCap: ResolvedPayment = { ...payment, settleAmountAtomic: permit.permittedAtomic };
  const state = await readPermit2ChainState(client, atCap, { simulate: { from: permit.witness.facilitator!, gasMax } });
  return judgePermit2State(atCap, state, false);
}

/** Why a simulated (or estimated) Permit2 settlement reverted, in 2.27's codes. */
export function explainPermit2Failure(payment: ResolvedPayment, state: Omit<Permit2ChainState, "simulation">, revert: Permit2Revert): Rejection {
  const required = payment.settleAmountAtomic;
  if (state.nonceUsed) return { reason: ReasonCode.permit2InvalidNonce, message: `Permit2 nonce ${payment.request.permit2!.nonce} is already used on chain` };
  if (state.balanceAtomic < required) {
    return { reason: ReasonCode.permit2InsufficientBalance, message: `payer balance ${state.balanceAtomic} is below the amount ${required}` };
  }
  if (state.allowanceAtomic < required) {
    return {
      reason: ReasonCode.permit2AllowanceRequired,
      message: `the payer's allowance to Permit2 (${permit2Address}) is ${state.allowanceAtomic}, below ${required}: approve Permit2 first${payment.request.eip2612 ? " (the EIP-2612 permit in the payload did not set it)" : ""}`,
    };
  }
  return { reason: reasonForPermit2Revert(revert, ReasonCode.permit2SimulationFailed), message: `simulation reverted: ${revert.text}` };
}
