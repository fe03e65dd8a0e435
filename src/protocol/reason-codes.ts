/**
 * Every reason code this facilitator puts on the wire, in one table.
 *
 * Strings follow the TypeScript v2 reference facilitator (@x402/evm exact scheme) where it has one,
 * then the x402 spec §9 list; the few of our own are marked. Clients must not depend on exact codes
 * (the SDKs disagree among themselves), but the official ones parse any string.
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
  missingEip712Domain: "invalid_exact_evm_missing_eip712_domain",
  invalidSignature: "invalid_exact_evm_signature",
  undeployedSmartWallet: "invalid_exact_evm_payload_undeployed_smart_wallet",
  recipientMismatch: "invalid_exact_evm_recipient_mismatch",
  validBeforeExpired: "invalid_exact_evm_payload_authorization_valid_before",
  validAfterInFuture: "invalid_exact_evm_payload_authorization_valid_after",
  authorizationValueMismatch: "invalid_exact_evm_authorization_value",
  eip3009NotSupported: "invalid_exact_evm_eip3009_not_supported",
  nonceAlreadyUsed: "invalid_exact_evm_nonce_already_used",
  tokenNameMismatch: "invalid_exact_evm_token_name_mismatch",
  tokenVersionMismatch: "invalid_exact_evm_token_version_mismatch",
  insufficientBalance: "invalid_exact_evm_insufficient_balance",
  simulationFailed: "invalid_exact_evm_transaction_simulation_failed",
  // ERC-6492 counterfactual wallets (@x402/evm 2.27).
  eip6492FactoryNotAllowed: "eip6492_factory_not_allowed",
  smartWalletDeploymentFailed: "smart_wallet_deployment_failed",
  // exact-evm settle.
  transactionFailed: "invalid_exact_evm_transaction_failed",
  duplicateSettlement: "duplicate_settlement", // TS-legacy enum
  settlementPending: "settlement_pending", // @x402/core settleWithPendingRetry
  gasCapExceeded: "gas_cap_exceeded", // ours: the estimate is above gasPerSettlementMax
  payerCooldown: "payer_cooldown", // ours: this payer's code made a settlement fail on chain recently
  payerBusy: "payer_busy", // ours (429): the payer has IN_FLIGHT_PER_PAYER_MAX settlements unfinished
  // Faults.
  unexpectedVerifyError: "unexpected_verify_error",
  unexpectedSettleError: "unexpected_settle_error",
  internalError: "internal_error", // ours: a bug on a route that is neither verify nor settle
  serviceUnavailable: "service_unavailable", // ours: Postgres or every RPC of the network is down
  idempotencyKeyReused: "idempotency_key_reused", // ours: same Idempotency-Key, different body
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
} as const;

export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];
