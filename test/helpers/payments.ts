import { randomBytes } from "node:crypto";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { transferWithAuthorizationTypes } from "../../src/exact-evm/typed-data.js";
import type { Authorization } from "../../src/protocol/types.js";

export interface SignPaymentOptions {
  payerKey: Hex;
  /** Signs with this key instead (wrong-signer tests); `from` stays the payer. */
  signerKey?: Hex;
  token: Address;
  chainId: number;
  payTo: Address;
  valueAtomic: bigint;
  validAfterSeconds?: bigint;
  validBeforeSeconds?: bigint;
  nonce?: Hex;
  domainName?: string;
  domainVersion?: string;
}

export interface SignedPayment {
  authorization: { from: Address; to: Address; value: string; validAfter: string; validBefore: string; nonce: Hex };
  signature: Hex;
}

/** The signed authorization as the service holds it after parsing (numbers as bigints). */
export function authorizationOf(payment: SignedPayment): Authorization {
  const { from, to, value, validAfter, validBefore, nonce } = payment.authorization;
  return { from, to, valueAtomic: BigInt(value), validAfterSeconds: BigInt(validAfter), validBeforeSeconds: BigInt(validBefore), nonce };
}

export const randomNonce = (): Hex => `0x${randomBytes(32).toString("hex")}`;
export const nowSeconds = (): bigint => BigInt(Math.floor(Date.now() / 1000));

/** Signs an EIP-3009 TransferWithAuthorization the way the x402 clients do (validAfter = now - 600). */
export async function signPayment(options: SignPaymentOptions): Promise<SignedPayment> {
  const payer = privateKeyToAccount(options.payerKey);
  const signer = privateKeyToAccount(options.signerKey ?? options.payerKey);
  const message = {
    from: payer.address,
    to: options.payTo,
    value: options.valueAtomic,
    validAfter: options.validAfterSeconds ?? nowSeconds() - 600n,
    validBefore: options.validBeforeSeconds ?? nowSeconds() + 300n,
    nonce: options.nonce ?? randomNonce(),
  };
  const signature = await signer.signTypedData({
    domain: { name: options.domainName ?? "USDC", version: options.domainVersion ?? "2", chainId: options.chainId, verifyingContract: options.token },
    types: transferWithAuthorizationTypes,
    primaryType: "TransferWithAuthorization",
    message,
  });
  return {
    authorization: {
      from: message.from,
      to: message.to,
      value: message.value.toString(),
      validAfter: message.validAfter.toString(),
      validBefore: message.validBefore.toString(),
      nonce: message.nonce,
    },
    signature,
  };
}

export interface RequirementsInput {
  token: Address;
  payTo: Address;
  amountAtomic: bigint;
  network?: string;
  name?: string;
  version?: string;
}

export function v2Requirements(input: RequirementsInput) {
  return {
    scheme: "exact",
    network: input.network ?? "eip155:84532",
    amount: input.amountAtomic.toString(),
    asset: input.token,
    payTo: input.payTo,
    maxTimeoutSeconds: 300,
    extra: { name: input.name ?? "USDC", version: input.version ?? "2" },
  };
}

export function v2Body(payment: SignedPayment, requirements: ReturnType<typeof v2Requirements>, accepted = requirements) {
  return {
    x402Version: 2,
    paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/resource" }, accepted, payload: payment },
    paymentRequirements: requirements,
  };
}

export function v1Body(payment: SignedPayment, input: RequirementsInput & { payloadNetwork?: string }) {
  const network = input.network ?? "base-sepolia";
  return {
    x402Version: 1,
    paymentPayload: { x402Version: 1, scheme: "exact", network: input.payloadNetwork ?? network, payload: payment },
    paymentRequirements: {
      scheme: "exact",
      network,
      maxAmountRequired: input.amountAtomic.toString(),
      resource: "http://127.0.0.1/resource",
      description: "test",
      mimeType: "application/json",
      payTo: input.payTo,
      maxTimeoutSeconds: 60,
      asset: input.token,
      extra: { name: input.name ?? "USDC", version: input.version ?? "2" },
    },
  };
}

/** The malleated twin of a signature: s' = n - s and v flipped. Valid for ecrecover, refused by USDC. */
export function malleate(signature: Hex): Hex {
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const r = signature.slice(2, 66);
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130, 132), 16);
  const highS = (n - s).toString(16).padStart(64, "0");
  const flippedV = (v === 27 ? 28 : v === 28 ? 27 : v ^ 1).toString(16).padStart(2, "0");
  return `0x${r}${highS}${flippedV}`;
}

/** A fresh, signed payment as a v2 /verify or /settle body: `payerKey` pays `payTo` exactly `amountAtomic`. */
export async function paymentBody(chain: { token: Address; chainId: number }, options: { payerKey: Hex; payTo: Address; amountAtomic: bigint }) {
  const payment = await signPayment({ payerKey: options.payerKey, token: chain.token, chainId: chain.chainId, payTo: options.payTo, valueAtomic: options.amountAtomic });
  return v2Body(payment, v2Requirements({ token: chain.token, payTo: options.payTo, amountAtomic: options.amountAtomic }));
}
