import { randomBytes } from "node:crypto";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { Authorization } from "../protocol/types.js";
import { transferAuthorizationTypedData } from "./typed-data.js";

/**
 * The payer's side of an exact-evm payment, as the x402 clients build it: an EIP-3009
 * TransferWithAuthorization signed with a private key, wrapped in the /verify and /settle request
 * body of x402 v2 or v1. Used by `x402-facilitator payment` (any chain, domain read from the RPC)
 * and scripts/sandbox-payment.ts (the sandbox's demo payer). Nothing here talks to a chain.
 */

export interface PaymentToken {
  address: Address;
  /** The token's EIP-712 domain name and version (USDC: "USD Coin" / "2" on mainnets). */
  name: string;
  version: string;
}

export interface PaymentBodyInput {
  payerKey: Hex;
  chainId: number;
  token: PaymentToken;
  payTo: Address;
  amountAtomic: bigint;
  x402Version: 1 | 2;
  /** v2: CAIP-2 (default `eip155:<chainId>`); v1: the network's v1 name (required). */
  network?: string;
  /** validBefore = now + this, also the requirements' maxTimeoutSeconds. Default 300. */
  validSeconds?: number;
  /** Default: the clock. validAfter is now - 600, as the x402 clients sign it (clock skew). */
  nowSeconds?: bigint;
  /** Default: 32 random bytes. */
  nonce?: Hex;
  /** v1 requirements' resource (required by v1 clients) and description. */
  resource?: string;
  description?: string;
}

export interface SignedAuthorization {
  signature: Hex;
  authorization: { from: Address; to: Address; value: string; validAfter: string; validBefore: string; nonce: Hex };
}

export const defaultPaymentValidSeconds = 300;
/** How far back validAfter is put, as @x402/evm does, so a payee with a slow clock accepts it. */
export const validAfterSkewSeconds = 600n;

export const randomAuthorizationNonce = (): Hex => `0x${randomBytes(32).toString("hex")}`;

/** Signs a TransferWithAuthorization of `amountAtomic` from the key's address to `payTo`. */
export async function signTransferAuthorization(input: Omit<PaymentBodyInput, "x402Version" | "network" | "resource" | "description">): Promise<SignedAuthorization> {
  const payer = privateKeyToAccount(input.payerKey);
  const now = input.nowSeconds ?? BigInt(Math.floor(Date.now() / 1000));
  const authorization: Authorization = {
    from: payer.address,
    to: input.payTo,
    valueAtomic: input.amountAtomic,
    validAfterSeconds: now - validAfterSkewSeconds,
    validBeforeSeconds: now + BigInt(input.validSeconds ?? defaultPaymentValidSeconds),
    nonce: input.nonce ?? randomAuthorizationNonce(),
  };
  const domain = { name: input.token.name, version: input.token.version, chainId: input.chainId, verifyingContract: input.token.address };
  const signature = await payer.signTypedData(transferAuthorizationTypedData(domain, authorization));
  return {
    signature,
    authorization: {
      from: authorization.from,
      to: authorization.to,
      value: `${authorization.valueAtomic}`,
      validAfter: `${authorization.validAfterSeconds}`,
      validBefore: `${authorization.validBeforeSeconds}`,
      nonce: authorization.nonce,
    },
  };
}

/** A signed /verify or /settle body: `{ x402Version, paymentPayload, paymentRequirements }`. */
export async function signedPaymentBody(input: PaymentBodyInput) {
  const payload = await signTransferAuthorization(input);
  const extra = { name: input.token.name, version: input.token.version };
  const maxTimeoutSeconds = input.validSeconds ?? defaultPaymentValidSeconds;
  if (input.x402Version === 2) {
    const requirements = {
      scheme: "exact",
      network: input.network ?? `eip155:${input.chainId}`,
      amount: `${input.amountAtomic}`,
      asset: input.token.address,
      payTo: input.payTo,
      maxTimeoutSeconds,
      extra,
    };
    return { x402Version: 2, paymentPayload: { x402Version: 2, accepted: requirements, payload }, paymentRequirements: requirements };
  }
  if (input.network === undefined) throw new Error("a v1 payment needs the network's v1 name");
  return {
    x402Version: 1,
    paymentPayload: { x402Version: 1, scheme: "exact", network: input.network, payload },
    paymentRequirements: {
      scheme: "exact",
      network: input.network,
      maxAmountRequired: `${input.amountAtomic}`,
      resource: input.resource ?? "http://127.0.0.1/resource",
      description: input.description ?? "x402 payment",
      mimeType: "application/json",
      payTo: input.payTo,
      maxTimeoutSeconds,
      asset: input.token.address,
      extra,
    },
  };
}
