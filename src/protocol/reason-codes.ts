/**
 * Every reason code this facilitator puts on the wire, in one table.
 *
 * Strings are those of the 2026 SDKs where they have one: @x402/evm 2.27's exact and upto
 * facilitators (`exact/facilitator/errors.ts`, `upto/facilitator/errors.ts`, the same strings as
 * the Go SDK), @x402/core 2.27, and the x402
 * spec §9 / v1 `ErrorReasons` list for the envelope codes. Codes of our own (policy, limits,
 * idempotency, faults) are listed apart in `ownReasonCodes` below and in README's second table;
 * test/unit/protocol/sdk-reason-codes.test.ts fails when a code is in neither the installed SDKs'
 * lists nor `ownReasonCodes`. Clients must not depend on exact codes, but the official ones parse
 * any string.
 */
export const ReasonCode = {
  // Envelope and routing (spec §9).
  invalidPayload: "invalid_payload",
  invalidPaymentRequirements: "invalid_payment_requirements",
  invalidX402Version: "invalid_x402_version",
  unsupportedScheme: "unsupported_scheme",
  invalidNetwork: "invalid_network",
  // exact-evm verify (TS v2 errors.ts).
  invalidScheme: "invalid_exact_evm_scheme",
  networkMismatch: "invalid_exact_evm_network_mismatch",
  invalidSignature: "invalid_exact_evm_signature",
  undeployedSmartWallet: "invalid_exact_evm_payload_undeployed_smart_wallet",
  recipientMismatch: "invalid_exact_evm_recipient_mismatch",
  validBeforeExpired: "invalid_exact_evm_payload_authorization_valid_before",
  validAfterInFuture: "invalid_exact_evm_payload_authorization_valid_after",
  /** v2: `authorization.value` is not the amount (2.27's ErrAuthorizationValueMismatch, spec v2 §9). */
  authorizationValueMismatch: "invalid_exact_evm_payload_authorization_value_mismatch",
  /** v1: the same, as 2.27's v1 exact facilitator still says it (ErrInvalidAuthorizationValue). */
  authorizationValueMismatchV1: "invalid_exact_evm_authorization_value",
  eip3009NotSupported: "invalid_exact_evm_eip3009_not_supported",
  nonceAlreadyUsed: "invalid_exact_evm_nonce_already_used",
  tokenNameMismatch: "invalid_exact_evm_token_name_mismatch",
  tokenVersionMismatch: "invalid_exact_evm_token_version_mismatch",
  insufficientBalance: "invalid_exact_evm_insufficient_balance",
  simulationFailed: "invalid_exact_evm_transaction_simulation_failed",
  // New in 2.27 (@x402/evm exact/facilitator/errors.ts).
  assetNotDeployedContract: "asset_not_deployed_contract", // the asset address has no code on that chain
  failedToParseSignature: "invalid_exact_evm_failed_to_parse_signature", // malformed bytes, no signer at all
  transferEventMismatch: "invalid_exact_evm_transfer_event_mismatch", // receipt success, no paying Transfer
  // ERC-6492 counterfactual wallets (@x402/evm 2.27).
  eip6492FactoryNotAllowed: "eip6492_factory_not_allowed",
  smartWalletDeploymentFailed: "smart_wallet_deployment_failed",
  // Permit2 (@x402/evm 2.27 exact/facilitator/errors.ts): `exact` over Permit2 and `upto`.
  unsupportedPayloadType: "unsupported_payload_type", // upto with a payload that is not its Permit2 shape; exact over Permit2 whose accepted.scheme is not the required one
  permit2InvalidSpender: "invalid_permit2_spender",
  permit2RecipientMismatch: "invalid_permit2_recipient_mismatch",
  permit2DeadlineExpired: "permit2_deadline_expired",
  permit2NotYetValid: "permit2_not_yet_valid",
  permit2AmountMismatch: "permit2_amount_mismatch",
  permit2TokenMismatch: "permit2_token_mismatch",
  permit2InvalidSignature: "invalid_permit2_signature",
  permit2AllowanceRequired: "permit2_allowance_required",
  permit2SimulationFailed: "permit2_simulation_failed",
  permit2InsufficientBalance: "permit2_insufficient_balance",
  permit2ProxyNotDeployed: "permit2_proxy_not_deployed",
  permit2InvalidAmount: "permit2_invalid_amount",
  permit2InvalidDestination: "permit2_invalid_destination",
  permit2InvalidOwner: "permit2_invalid_owner",
  permit2PaymentTooEarly: "permit2_payment_too_early",
  permit2InvalidNonce: "permit2_invalid_nonce",
  permit2612AmountMismatch: "permit2_2612_amount_mismatch",
  // The eip2612GasSponsoring extension (@x402/evm 2.27).
  eip2612InvalidFormat: "invalid_eip2612_extension_format",
  eip2612FromMismatch: "eip2612_from_mismatch",
  eip2612AssetMismatch: "eip2612_asset_mismatch",
  eip2612SpenderNotPermit2: "eip2612_spender_not_permit2",
  eip2612DeadlineExpired: "eip2612_deadline_expired",
  // upto (@x402/evm 2.27 upto/facilitator/errors.ts).
  uptoTransactionFailed: "invalid_upto_evm_transaction_failed",
  uptoInvalidScheme: "invalid_upto_evm_scheme",
  uptoNetworkMismatch: "invalid_upto_evm_network_mismatch",
  uptoSettlementExceedsAmount: "invalid_upto_evm_payload_settlement_exceeds_amount",
  uptoAmountExceedsPermitted: "upto_amount_exceeds_permitted",
  uptoUnauthorizedFacilitator: "upto_unauthorized_facilitator",
  uptoFacilitatorMismatch: "upto_facilitator_mismatch",
  // exact-evm settle.
  transactionFailed: "invalid_exact_evm_transaction_failed",
  duplicateSettlement: "duplicate_settlement", // x402 1.2 (v1 SDK) ErrorReasons
  settlementPending: "settlement_pending", // @x402/evm ErrSettlementPending; @x402/core retries it once
  gasCapExceeded: "gas_cap_exceeded", // ours: the estimate is above gasPerSettlementMax
  payerCooldown: "payer_cooldown", // ours: this payer's code made a settlement fail on chain recently
  payerBusy: "payer_busy", // ours (429): the payer has IN_FLIGHT_PER_PAYER_MAX settlements unfinished, a permit in flight, or its funds are held by its unfinished ones
  // Faults.
  unexpectedVerifyError: "unexpected_verify_error",
  unexpectedSettleError: "unexpected_settle_error",
  internalError: "internal_error", // ours: a bug on a route that is neither verify nor settle
  serviceUnavailable: "service_unavailable", // ours: Postgres or every RPC of the network is down
  idempotencyKeyReused: "idempotency_key_reused", // ours: same Idempotency-Key, different body
  paymentIdentifierConflict: "payment_identifier_conflict", // ours: same payment-identifier id, different body (the spec's 409)
  idempotencyKeysDiffer: "idempotency_keys_differ", // ours: Idempotency-Key and the payment-identifier id both given, and different
  // Operator policy (ours): caller authentication, allowlists and caps.
  unauthorized: "unauthorized",
  forbidden: "forbidden",
  payToNotAllowed: "pay_to_not_allowed",
  networkNotAllowed: "network_not_allowed",
  assetNotAllowed: "asset_not_allowed",
  amountAboveLimit: "amount_above_limit",
  amountBelowMinimum: "amount_below_minimum", // ours: value 0 or below MIN_AMOUNT_ATOMIC
  gasBudgetExhausted: "gas_budget_exhausted",
  rateLimited: "rate_limited",
  notFound: "not_found", // ours (404): no such route, or no such settlement
  // Sanctions screening (ours): SANCTIONS_DENYLIST_FILE and each network's sanctions oracle (src/screening/).
  payerSanctioned: "payer_sanctioned",
  payToSanctioned: "pay_to_sanctioned",
  sanctionsScreeningUnavailable: "sanctions_screening_unavailable", // the oracle could not answer, SANCTIONS_ORACLE_FAILURE=closed
} as const;

export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];

/**
 * The codes of our own: in no installed x402 SDK's list nor the spec's (README lists them apart).
 * Every other ReasonCode must be one of theirs (test/unit/protocol/sdk-reason-codes.test.ts).
 */
export const ownReasonCodes = [
  ReasonCode.gasCapExceeded,
  ReasonCode.payerCooldown,
  ReasonCode.payerBusy,
  ReasonCode.internalError,
  ReasonCode.serviceUnavailable,
  ReasonCode.idempotencyKeyReused,
  ReasonCode.unauthorized,
  ReasonCode.forbidden,
  ReasonCode.payToNotAllowed,
  ReasonCode.networkNotAllowed,
  ReasonCode.assetNotAllowed,
  ReasonCode.amountAboveLimit,
  ReasonCode.amountBelowMinimum,
  ReasonCode.gasBudgetExhausted,
  ReasonCode.rateLimited,
  ReasonCode.notFound,
  ReasonCode.paymentIdentifierConflict,
  ReasonCode.idempotencyKeysDiffer,
  ReasonCode.payerSanctioned,
  ReasonCode.payToSanctioned,
  ReasonCode.sanctionsScreeningUnavailable,
] as const satisfies readonly ReasonCode[];

/**
 * The shape of an answer that names a reason code (README, *Errors and reason codes*):
 * - `outcome`: a business outcome, returned by the handler (render.ts), never thrown. HTTP 200;
 *   /verify `{isValid:false, invalidReason, invalidMessage?, payer?}`, /settle `{success:false,
 *   errorReason, errorMessage?, payer?, transaction, network}`.
 * - `error`: thrown as a FacilitatorError and answered by the error handler (http/error-answers.ts)
 *   with the table's status: the route's shape with the message always present, plus `error` and
 *   `message` (`{error, message}` alone on other routes); it names the payer and network once the
 *   body parsed (`transaction` is "", `network` "" before).
 * - `request-error`: as `error`, about the HTTP request itself (its body, its credentials, its
 *   Idempotency-Key or payment identifier) rather than the payment in it: it never names a payer or network.
 */
export type AnswerShape = "outcome" | "error" | "request-error";

export interface ReasonAnswer {
  status: number;
  shape: AnswerShape;
}

const outcome = { status: 200, shape: "outcome" } as const;
const error = <Status extends number>(status: Status) => ({ status, shape: "error" }) as const;
const requestError = <Status extends number>(status: Status) => ({ status, shape: "request-error" }) as const;

/**
 * Each reason code's HTTP status and answer shape: the one place either is decided. A code thrown
 * as an error may also come back later as a 200 outcome, read from the settlement row it was
 * recorded on (a duplicate /settle answering a claim released with `service_unavailable`), and
 * `invalid_payment_requirements` is both a malformed body (400) and a well-formed one we cannot
 * serve (200). Fastify's own 4xx (a body too large, a content type not JSON) keep their status
 * with `invalid_payload`.
 */
export const reasonAnswers = {
  [ReasonCode.invalidPayload]: requestError(400),
  [ReasonCode.invalidPaymentRequirements]: requestError(400),
  [ReasonCode.invalidX402Version]: outcome,
  [ReasonCode.unsupportedScheme]: outcome,
  [ReasonCode.invalidNetwork]: outcome,
  [ReasonCode.invalidScheme]: outcome,
  [ReasonCode.networkMismatch]: outcome,
  [ReasonCode.invalidSignature]: outcome,
  [ReasonCode.undeployedSmartWallet]: outcome,
  [ReasonCode.recipientMismatch]: outcome,
  [ReasonCode.validBeforeExpired]: outcome,
  [ReasonCode.validAfterInFuture]: outcome,
  [ReasonCode.authorizationValueMismatch]: outcome,
  [ReasonCode.authorizationValueMismatchV1]: outcome,
  [ReasonCode.eip3009NotSupported]: outcome,
  [ReasonCode.nonceAlreadyUsed]: outcome,
  [ReasonCode.tokenNameMismatch]: outcome,
  [ReasonCode.tokenVersionMismatch]: outcome,
  [ReasonCode.insufficientBalance]: outcome,
  [ReasonCode.simulationFailed]: outcome,
  [ReasonCode.assetNotDeployedContract]: outcome,
  [ReasonCode.failedToParseSignature]: outcome,
  [ReasonCode.transferEventMismatch]: outcome,
  [ReasonCode.eip6492FactoryNotAllowed]: outcome,
  [ReasonCode.smartWalletDeploymentFailed]: outcome,
  [ReasonCode.unsupportedPayloadType]: outcome,
  [ReasonCode.permit2InvalidSpender]: outcome,
  [ReasonCode.permit2RecipientMismatch]: outcome,
  [ReasonCode.permit2DeadlineExpired]: outcome,
  [ReasonCode.permit2NotYetValid]: outcome,
  [ReasonCode.permit2AmountMismatch]: outcome,
  [ReasonCode.permit2TokenMismatch]: outcome,
  [ReasonCode.permit2InvalidSignature]: outcome,
  // The 2.27 resource server answers its buyer 412 for this one (the payer must approve Permit2 first).
  [ReasonCode.permit2AllowanceRequired]: outcome,
  [ReasonCode.permit2SimulationFailed]: outcome,
  [ReasonCode.permit2InsufficientBalance]: outcome,
  [ReasonCode.permit2ProxyNotDeployed]: outcome,
  [ReasonCode.permit2InvalidAmount]: outcome,
  [ReasonCode.permit2InvalidDestination]: outcome,
  [ReasonCode.permit2InvalidOwner]: outcome,
  [ReasonCode.permit2PaymentTooEarly]: outcome,
  [ReasonCode.permit2InvalidNonce]: outcome,
  [ReasonCode.permit2612AmountMismatch]: outcome,
  [ReasonCode.eip2612InvalidFormat]: outcome,
  [ReasonCode.eip2612FromMismatch]: outcome,
  [ReasonCode.eip2612AssetMismatch]: outcome,
  [ReasonCode.eip2612SpenderNotPermit2]: outcome,
  [ReasonCode.eip2612DeadlineExpired]: outcome,
  [ReasonCode.uptoTransactionFailed]: outcome,
  [ReasonCode.uptoInvalidScheme]: outcome,
  [ReasonCode.uptoNetworkMismatch]: outcome,
  [ReasonCode.uptoSettlementExceedsAmount]: outcome,
  [ReasonCode.uptoAmountExceedsPermitted]: outcome,
  [ReasonCode.uptoUnauthorizedFacilitator]: outcome,
  [ReasonCode.uptoFacilitatorMismatch]: outcome,
  [ReasonCode.transactionFailed]: outcome,
  [ReasonCode.duplicateSettlement]: outcome,
  [ReasonCode.settlementPending]: outcome,
  [ReasonCode.gasCapExceeded]: outcome,
  [ReasonCode.payerCooldown]: outcome,
  [ReasonCode.payerBusy]: error(429),
  // Our faults: the message is fixed ("see the facilitator logs"), never the error's own.
  [ReasonCode.unexpectedVerifyError]: error(500),
  [ReasonCode.unexpectedSettleError]: error(500),
  [ReasonCode.internalError]: error(500),
  // Postgres or every RPC down (DependencyUnavailableError), every signer busy (SignersBusyError),
  // a signer unable to pay for gas (SignerCannotPayError): nothing was done, retry later.
  [ReasonCode.serviceUnavailable]: error(503),
  // 422: the key was used with another body. 409 (IdempotencyKeyBusyError): the first request
  // with this key is still running — the one code answered with two statuses.
  [ReasonCode.idempotencyKeyReused]: requestError(422),
  // The payment-identifier extension's own answer for another body is 409 Conflict (its spec's
  // table); a request naming two different keys is refused before either is looked up.
  [ReasonCode.paymentIdentifierConflict]: requestError(409),
  [ReasonCode.idempotencyKeysDiffer]: requestError(400),
  [ReasonCode.unauthorized]: requestError(401),
  [ReasonCode.forbidden]: requestError(403),
  [ReasonCode.payToNotAllowed]: error(403),
  [ReasonCode.networkNotAllowed]: error(403),
  [ReasonCode.assetNotAllowed]: error(403),
  [ReasonCode.amountAboveLimit]: error(403),
  [ReasonCode.amountBelowMinimum]: outcome,
  [ReasonCode.gasBudgetExhausted]: error(429),
  [ReasonCode.rateLimited]: requestError(429),
  [ReasonCode.notFound]: requestError(404),
  // Outcomes, not errors: the payment is refused (a resource server answers its buyer 402, as for
  // any invalid payment), nothing was claimed or sent; "unavailable" may pass on a later retry.
  [ReasonCode.payerSanctioned]: outcome,
  [ReasonCode.payToSanctioned]: outcome,
  [ReasonCode.sanctionsScreeningUnavailable]: outcome,
} as const satisfies Record<ReasonCode, ReasonAnswer>;

/** The codes a FacilitatorError may carry: those the table answers as errors, never an outcome's. */
export type ErrorReasonCode = { [Code in ReasonCode]: (typeof reasonAnswers)[Code]["shape"] extends "outcome" ? never : Code }[ReasonCode];
