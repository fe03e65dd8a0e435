import { Compile } from "typebox/compile";
import { getAddress, maxUint256, type Hex } from "viem";
import { InvalidRequestError } from "../errors.js";
import { chainIdFromCaip2, v1NetworkChainIds } from "./networks.js";
import { ReasonCode } from "./reason-codes.js";
import { PayloadV1Schema, PayloadV2Schema, RequirementsV1Schema, RequirementsV2Schema } from "./schemas.js";
import type { Authorization, PaymentRequest, Rejection, Requirements, X402Version } from "./types.js";

const requirementsV1 = Compile(RequirementsV1Schema);
const requirementsV2 = Compile(RequirementsV2Schema);
const payloadV1 = Compile(PayloadV1Schema);
const payloadV2 = Compile(PayloadV2Schema);

export interface Envelope {
  paymentPayload: Record<string, unknown>;
  paymentRequirements: Record<string, unknown>;
}

/** Says whether a network, as named in the caller's version, is one we serve. */
export type NetworkServed = (version: X402Version, network: string) => boolean;

export type Normalized =
  | { ok: true; request: PaymentRequest }
  | { ok: false; rejection: Rejection; version: X402Version | undefined; payer: string | undefined; network: string };

/**
 * Turns a v1 or v2 body into one PaymentRequest.
 * Malformed shapes throw InvalidRequestError (HTTP 400); a well-formed request we cannot serve
 * (unknown version, scheme or network) is a Rejection (HTTP 200), like the reference facilitator.
 * Dispatch is on paymentPayload.x402Version, as the SDKs do; the top-level x402Version is ignored.
 */
export function normalize(body: Envelope, networkServed: NetworkServed): Normalized {
  const version = body.paymentPayload.x402Version;
  const requirementsNetwork = stringOr(body.paymentRequirements.network, "");
  if (version !== 1 && version !== 2) {
    return reject(undefined, body, requirementsNetwork, ReasonCode.invalidX402Version, `x402Version ${describeVersion(version)} is not supported (1 or 2)`);
  }
  const requirementsValidator = version === 1 ? requirementsV1 : requirementsV2;
  if (!requirementsValidator.Check(body.paymentRequirements)) {
    throw new InvalidRequestError(ReasonCode.invalidPaymentRequirements, firstError(requirementsValidator, body.paymentRequirements, "paymentRequirements"));
  }
  const requirements = toRequirements(body.paymentRequirements as Record<string, unknown>, version);
  if (requirements.scheme !== "exact") {
    return reject(version, body, requirements.network, ReasonCode.unsupportedScheme, `scheme "${requirements.scheme}" is not supported; this facilitator settles "exact"`);
  }
  if (!networkServed(version, requirements.network)) {
    return reject(version, body, requirements.network, ReasonCode.invalidNetwork, `network "${requirements.network}" is not served by this facilitator (see GET /supported)`);
  }
  const payloadValidator = version === 1 ? payloadV1 : payloadV2;
  if (!payloadValidator.Check(body.paymentPayload)) {
    throw new InvalidRequestError(ReasonCode.invalidPayload, firstError(payloadValidator, body.paymentPayload, "paymentPayload"));
  }
  const payload = body.paymentPayload as Record<string, unknown>;
  const inner = payload.payload as { signature: string; authorization: Record<string, string> };
  const authorization = toAuthorization(inner.authorization);
  assertUint256(requirements.amountAtomic, "paymentRequirements amount");
  assertUint256(authorization.valueAtomic, "authorization.value");
  assertUint256(authorization.validAfterSeconds, "authorization.validAfter");
  assertUint256(authorization.validBeforeSeconds, "authorization.validBefore");
  const accepted =
    version === 2
      ? toRequirements(payload.accepted as Record<string, unknown>, 2)
      : { scheme: String(payload.scheme), network: String(payload.network) };
  return {
    ok: true,
    request: {
      x402Version: version,
      requirements,
      accepted,
      authorization,
      signature: inner.signature.toLowerCase() as Hex,
      chainId: version === 1 ? v1NetworkChainIds[requirements.network] : chainIdFromCaip2(requirements.network),
    },
  };
}

function toRequirements(raw: Record<string, unknown>, version: X402Version): Requirements {
  const extra = (raw.extra ?? undefined) as { name?: string; version?: string } | undefined;
  return {
    scheme: String(raw.scheme),
    network: String(raw.network),
    amountAtomic: BigInt(String(version === 1 ? raw.maxAmountRequired : raw.amount)),
    asset: getAddress(String(raw.asset)),
    payTo: getAddress(String(raw.payTo)),
    extraName: extra?.name,
    extraVersion: extra?.version,
  };
}

function toAuthorization(raw: Record<string, string>): Authorization {
  return {
    from: getAddress(raw.from as string),
    to: getAddress(raw.to as string),
    valueAtomic: BigInt(raw.value as string),
    validAfterSeconds: BigInt(raw.validAfter as string),
    validBeforeSeconds: BigInt(raw.validBefore as string),
    nonce: (raw.nonce as string).toLowerCase() as Hex,
  };
}

/** 78 decimal digits can still overflow uint256; such a value could never be signed or sent. */
function assertUint256(value: bigint, field: string): void {
  if (value > maxUint256) throw new InvalidRequestError(ReasonCode.invalidPayload, `${field} does not fit in uint256`);
}

function reject(version: X402Version | undefined, body: Envelope, network: string, reason: Rejection["reason"], message: string): Normalized {
  return { ok: false, rejection: { reason, message }, version, payer: payerOf(body), network };
}

/** Best-effort payer for answers about requests we could not fully parse. */
function payerOf(body: Envelope): string | undefined {
  const inner = body.paymentPayload.payload as { authorization?: { from?: unknown } } | undefined;
  const from = inner?.authorization?.from;
  return typeof from === "string" && /^0x[0-9a-fA-F]{40}$/.test(from) ? getAddress(from) : undefined;
}

/**
 * The caller's x402Version for a message. Not String(value): that recurses into arrays (join), so a
 * deeply nested array overflowed the stack and turned an invalid_x402_version answer into a 500.
 */
function describeVersion(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 32));
  if (Array.isArray(value)) return "(an array)";
  if (value !== null && typeof value === "object") return "(an object)";
  return String(value);
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" && value.length <= 128 ? value : fallback;
}

function firstError(validator: { Errors(value: unknown): Iterable<{ instancePath: string; message: string }> }, value: unknown, root: string): string {
  for (const error of validator.Errors(value)) {
    const path = error.instancePath.replaceAll("/", ".");
    return `${root}${path} ${error.message}`;
  }
  return `${root} is invalid`;
}

