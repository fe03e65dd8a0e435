import { Compile } from "typebox/compile";
import { getAddress, maxUint256, type Hex } from "viem";
import { InvalidRequestError } from "../errors.js";
import { chainIdFromCaip2, v1NetworkChainIds } from "./networks.js";
import { ReasonCode } from "./reason-codes.js";
import { PayloadV1Schema, PayloadV2Permit2Schema, PayloadV2Schema, RequirementsV1Schema, RequirementsV2Schema } from "./schemas.js";
import type { Authorization, Eip2612Extension, Permit2Authorization, PaymentRequest, Rejection, Requirements, X402Version } from "./types.js";
import { eip2612ExtensionOf } from "./eip2612-extension.js";

const requirementsV1 = Compile(RequirementsV1Schema);
const requirementsV2 = Compile(RequirementsV2Schema);
const payloadV1 = Compile(PayloadV1Schema);
const payloadV2 = Compile(PayloadV2Schema);
const payloadV2Permit2 = Compile(PayloadV2Permit2Schema);

/** The schemes this facilitator settles; `upto` only in v2, only over Permit2 (as @x402/evm 2.27). */
const servedSchemes = new Set(["exact", "upto"]);

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
  if (!servedSchemes.has(requirements.scheme) || (requirements.scheme === "upto" && version === 1)) {
    return reject(version, body, requirements.network, ReasonCode.unsupportedScheme, `scheme "${requirements.scheme}" is not supported; this facilitator settles "exact" (v1, v2) and "upto" (v2)`);
  }
  if (!networkServed(version, requirements.network)) {
    return reject(version, body, requirements.network, ReasonCode.invalidNetwork, `network "${requirements.network}" is not served by this facilitator (see GET /supported)`);
  }
  // As @x402/evm 2.27 routes it: a v2 payload carrying `permit2Authorization` is Permit2, else EIP-3009.
  const inner = body.paymentPayload.payload;
  const isPermit2 = version === 2 && inner !== null && typeof inner === "object" && "permit2Authorization" in inner;
  if (requirements.scheme === "upto" && !isUptoShape(inner)) {
    return reject(version, body, requirements.network, ReasonCode.unsupportedPayloadType, "upto takes a Permit2 payload (permit2Authorization with witness.facilitator) only");
  }
  const payloadValidator = version === 1 ? payloadV1 : isPermit2 ? payloadV2Permit2 : payloadV2;
  if (!payloadValidator.Check(body.paymentPayload)) {
    throw new InvalidRequestError(ReasonCode.invalidPayload, firstError(payloadValidator, body.paymentPayload, "paymentPayload"));
  }
  const payload = body.paymentPayload as Record<string, unknown>;
  const accepted =
    version === 2
      ? toRequirements(payload.accepted as Record<string, unknown>, 2)
      : { scheme: String(payload.scheme), network: String(payload.network) };
  const chainId = version === 1 ? v1NetworkChainIds[requirements.network] : chainIdFromCaip2(requirements.network);
  assertUint256(requirements.amountAtomic, "paymentRequirements amount");
  if (isPermit2) {
    const raw = payload.payload as { signature: string; permit2Authorization: Record<string, unknown> };
    const permit2 = toPermit2Authorization(raw.permit2Authorization);
    const eip2612: Eip2612Extension | undefined = eip2612ExtensionOf(payload.extensions);
    return {
      ok: true,
      request: {
        x402Version: version,
        requirements,
        accepted,
        authorization: permit2AuthorizationView(permit2),
        transferMethod: "permit2",
        permit2,
        ...(eip2612 ? { eip2612 } : {}),
        signature: raw.signature.toLowerCase() as Hex,
        chainId,
      },
    };
  }
  const raw = payload.payload as { signature: string; authorization: Record<string, string> };
  const authorization = toAuthorization(raw.authorization);
  assertUint256(authorization.valueAtomic, "authorization.value");
  assertUint256(authorization.validAfterSeconds, "authorization.validAfter");
  assertUint256(authorization.validBeforeSeconds, "authorization.validBefore");
  return {
    ok: true,
    request: { x402Version: version, requirements, accepted, authorization, transferMethod: "eip3009", signature: raw.signature.toLowerCase() as Hex, chainId },
  };
}

/** @x402/evm 2.27's isUptoPermit2Payload: the structure, before any field's format is checked. */
function isUptoShape(inner: unknown): boolean {
  if (inner === null || typeof inner !== "object") return false;
  const { signature, permit2Authorization: auth } = inner as { signature?: unknown; permit2Authorization?: unknown };
  if (typeof signature !== "string" || auth === null || typeof auth !== "object") return false;
  const a = auth as Record<string, unknown>;
  const permitted = a.permitted as Record<string, unknown> | null | undefined;
  const witness = a.witness as Record<string, unknown> | null | undefined;
  return (
    ["from", "spender", "nonce", "deadline"].every((field) => typeof a[field] === "string") &&
    typeof permitted === "object" && permitted !== null && typeof permitted.token === "string" && typeof permitted.amount === "string" &&
    typeof witness === "object" && witness !== null && typeof witness.facilitator === "string" && typeof witness.to === "string" && typeof witness.validAfter === "string"
  );
}

function toPermit2Authorization(raw: Record<string, unknown>): Permit2Authorization {
  const permitted = raw.permitted as { token: string; amount: string };
  const witness = raw.witness as { to: string; validAfter: string; facilitator?: string };
  const permit2: Permit2Authorization = {
    owner: getAddress(raw.from as string),
    token: getAddress(permitted.token),
    permittedAtomic: BigInt(permitted.amount),
    spender: getAddress(raw.spender as string),
    nonce: BigInt(raw.nonce as string),
    deadlineSeconds: BigInt(raw.deadline as string),
    witness: {
      to: getAddress(witness.to),
      validAfterSeconds: BigInt(witness.validAfter),
      ...(witness.facilitator === undefined ? {} : { facilitator: getAddress(witness.facilitator) }),
    },
  };
  assertUint256(permit2.permittedAtomic, "permit2Authorization.permitted.amount");
  assertUint256(permit2.deadlineSeconds, "permit2Authorization.deadline");
  assertUint256(permit2.witness.validAfterSeconds, "permit2Authorization.witness.validAfter");
  assertUint256(permit2.nonce, "permit2Authorization.nonce");
  return permit2;
}

/** The permit in the Authorization shape (see PaymentRequest.authorization). */
export function permit2AuthorizationView(permit2: Permit2Authorization): Authorization {
  return {
    from: permit2.owner,
    to: permit2.witness.to,
    valueAtomic: permit2.permittedAtomic,
    validAfterSeconds: permit2.witness.validAfterSeconds,
    validBeforeSeconds: permit2.deadlineSeconds,
    nonce: permit2NonceHex(permit2.nonce),
  };
}

/** A Permit2 nonce as the 32 bytes of lowercase hex rows store nonces in. */
export function permit2NonceHex(nonce: bigint): Hex {
  return `0x${nonce.toString(16).padStart(64, "0")}`;
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
  const inner = body.paymentPayload.payload as { authorization?: { from?: unknown }; permit2Authorization?: { from?: unknown } } | undefined;
  const from = inner?.authorization?.from ?? inner?.permit2Authorization?.from;
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

