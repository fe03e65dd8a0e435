import { Type } from "typebox";

/**
 * Wire schemas. One definition serves the Fastify route (envelope), the strict per-version parse
 * in normalize.ts, and (later) OpenAPI. Extra properties are allowed: SDKs add fields over time.
 */
export const addressPattern = "^0x[0-9a-fA-F]{40}$";
/** uint256 as a decimal string: at most 78 digits. */
export const uintStringPattern = "^(0|[1-9][0-9]{0,77})$";

const Address = Type.String({ pattern: addressPattern });
const UintString = Type.String({ pattern: uintStringPattern });

export const AuthorizationSchema = Type.Object({
  from: Address,
  to: Address,
  value: UintString,
  validAfter: UintString,
  validBefore: UintString,
  nonce: Type.String({ pattern: "^0x[0-9a-fA-F]{64}$" }),
});

/** EIP-3009 payload. Signatures: 65-byte ECDSA, or ERC-1271/6492 blobs (bounded). */
export const ExactEvmPayloadSchema = Type.Object({
  signature: Type.String({ pattern: "^0x([0-9a-fA-F]{2})+$", maxLength: 2 + 2 * 16_384 }),
  authorization: AuthorizationSchema,
});

/**
 * A Permit2 PermitWitnessTransferFrom as @x402/evm 2.27 sends it (`types.ts` ExactPermit2Payload /
 * UptoPermit2Payload): numbers as decimal strings; the nonce, 256 random bits, also as 0x hex (the
 * spec's example). `witness.facilitator` is upto's (the one address that may settle it).
 */
export const Permit2NoncePattern = "^(0|[1-9][0-9]{0,77}|0x[0-9a-fA-F]{1,64})$";
export const Permit2PayloadSchema = Type.Object({
  signature: Type.String({ pattern: "^0x([0-9a-fA-F]{2})+$", maxLength: 2 + 2 * 16_384 }),
  permit2Authorization: Type.Object({
    from: Address,
    permitted: Type.Object({ token: Address, amount: UintString }),
    spender: Address,
    nonce: Type.String({ pattern: Permit2NoncePattern }),
    deadline: UintString,
    witness: Type.Object({ to: Address, validAfter: UintString, facilitator: Type.Optional(Address) }),
  }),
});

const Extra = Type.Union([
  Type.Object({
    name: Type.Optional(Type.String({ maxLength: 256 })),
    version: Type.Optional(Type.String({ maxLength: 64 })),
  }),
  Type.Null(),
]);

const Scheme = Type.String({ minLength: 1, maxLength: 64 });
const Network = Type.String({ minLength: 1, maxLength: 128 });
const TimeoutSeconds = Type.Integer({ minimum: 0, maximum: 86_400 * 365 });

export const RequirementsV2Schema = Type.Object({
  scheme: Scheme,
  network: Network,
  amount: UintString,
  asset: Address,
  payTo: Address,
  maxTimeoutSeconds: Type.Optional(TimeoutSeconds),
  extra: Type.Optional(Extra),
});

export const RequirementsV1Schema = Type.Object({
  scheme: Scheme,
  network: Network,
  maxAmountRequired: UintString,
  asset: Address,
  payTo: Address,
  resource: Type.Optional(Type.String({ maxLength: 4096 })),
  description: Type.Optional(Type.String({ maxLength: 4096 })),
  maxTimeoutSeconds: Type.Optional(TimeoutSeconds),
  extra: Type.Optional(Extra),
});

export const PayloadV2Schema = Type.Object({
  x402Version: Type.Literal(2),
  accepted: RequirementsV2Schema,
  payload: ExactEvmPayloadSchema,
});

/** v2 with a Permit2 payload (`exact` with assetTransferMethod "permit2", and `upto`). */
export const PayloadV2Permit2Schema = Type.Object({
  x402Version: Type.Literal(2),
  accepted: RequirementsV2Schema,
  payload: Permit2PayloadSchema,
  extensions: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()])),
});

export const PayloadV1Schema = Type.Object({
  x402Version: Type.Literal(1),
  scheme: Scheme,
  network: Network,
  payload: ExactEvmPayloadSchema,
});

/** What the route itself checks; the rest is version-specific and checked in normalize(). */
export const RequestEnvelopeSchema = Type.Object({
  x402Version: Type.Optional(Type.Integer()),
  paymentPayload: Type.Object({ x402Version: Type.Optional(Type.Unknown()) }),
  paymentRequirements: Type.Object({}),
});

export const VerifyResponseSchema = Type.Object({
  isValid: Type.Boolean(),
  invalidReason: Type.Optional(Type.String()),
  invalidMessage: Type.Optional(Type.String()),
  payer: Type.Optional(Type.String()),
});

export const SettleResponseSchema = Type.Object({
  success: Type.Boolean(),
  errorReason: Type.Optional(Type.String()),
  errorMessage: Type.Optional(Type.String()),
  payer: Type.Optional(Type.String()),
  transaction: Type.String(),
  network: Type.String(),
  amount: Type.Optional(Type.String({ pattern: uintStringPattern })),
});

/** 4xx/5xx answers keep the route's shape (clients look for isValid/success) plus error/message. */
export const VerifyErrorResponseSchema = Type.Object({
  isValid: Type.Literal(false),
  invalidReason: Type.String(),
  invalidMessage: Type.String(),
  payer: Type.Optional(Type.String()),
  error: Type.String(),
  message: Type.String(),
});

export const SettleErrorResponseSchema = Type.Object({
  success: Type.Literal(false),
  errorReason: Type.String(),
  errorMessage: Type.String(),
  transaction: Type.String(),
  network: Type.String(),
  payer: Type.Optional(Type.String()),
  error: Type.String(),
  message: Type.String(),
});
