/**
 * The x402 wire shapes the proxy speaks (specs/transports-v1/http.md and -v2/http.md):
 *   402:      v2 `PAYMENT-REQUIRED: base64(PaymentRequired)` header  +  v1 JSON body `{x402Version:1, error, accepts}`
 *   payment:  v2 `PAYMENT-SIGNATURE`  /  v1 `X-PAYMENT`                 (base64 JSON PaymentPayload)
 *   receipt:  v2 `PAYMENT-RESPONSE`   /  v1 `X-PAYMENT-RESPONSE`        (base64 JSON SettleResponse)
 * One 402 serves both generations: v2 clients read the header first, v1 clients read the body.
 */
import { decodePaymentSignatureHeader, encodePaymentRequiredHeader, encodePaymentResponseHeader } from "@x402/core/http";
import type { PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { deepEqual } from "@x402/core/utils";
import { declareEip2612GasSponsoringExtension } from "@x402/extensions";
import type { Address } from "viem";
import type { ProxyConfig } from "./config.js";

export const HEADERS = {
  paymentRequired: "PAYMENT-REQUIRED",
  v2Payment: "PAYMENT-SIGNATURE",
  v1Payment: "X-PAYMENT",
  v2Receipt: "PAYMENT-RESPONSE",
  v1Receipt: "X-PAYMENT-RESPONSE",
} as const;

/** v1 requirements as the v1 SDK (`x402` 1.x zod) accepts them: `resource` a URL, no null `outputSchema`. */
export interface RequirementsV1 {
  scheme: "exact";
  network: string;
  maxAmountRequired: string;
  resource: string;
  description: string;
  mimeType: string;
  payTo: string;
  maxTimeoutSeconds: number;
  asset: string;
  extra: { name: string; version: string };
}

export interface PayloadV1 {
  x402Version: 1;
  scheme: string;
  network: string;
  payload: Record<string, unknown>;
}

/**
 * What the facilitator offers besides EIP-3009 `exact`, read from its /supported once (terms.ts):
 * `upto` needs the key the buyer's witness must name (`extra.facilitatorAddress`).
 */
export interface OfferTerms {
  upto?: { facilitatorAddress: Address };
  /** The facilitator takes an EIP-2612 permit for Permit2 along an `upto` payment (buyers without an allowance). */
  eip2612GasSponsoring: boolean;
}

/** Both versions' requirements for one priced request. */
export interface Offer {
  /** `exact` over EIP-3009 for the quote: what every v2 client can pay. */
  exact: PaymentRequirements;
  /** `upto` over Permit2 with the quote as the cap, when the facilitator settles it. */
  upto?: PaymentRequirements;
  /** v2 `accepts`, in the order of preference (x402Client takes the first it can pay): upto, then exact. */
  accepts: PaymentRequirements[];
  /** v1 knows only `exact` (EIP-3009). */
  v1: RequirementsV1;
  resource: { url: string; description: string; mimeType: string };
  /** The 402's `extensions`: eip2612GasSponsoring when upto is offered and the facilitator takes it. */
  extensions?: Record<string, unknown>;
}

export function buildOffer(config: ProxyConfig, amount: string, resourceUrl: string, description: string, terms: OfferTerms): Offer {
  const extra = { name: config.asset.name, version: config.asset.version };
  const exact: PaymentRequirements = {
    scheme: "exact",
    network: config.network.caip2,
    amount,
    asset: config.asset.address,
    payTo: config.walletAddress,
    maxTimeoutSeconds: config.maxTimeoutSeconds,
    extra,
  };
  // As @x402/evm's UptoEvmScheme server builds it: the token's domain (for the EIP-2612 permit),
  // Permit2 as the transfer method, and the facilitator key the witness must name.
  const upto: PaymentRequirements | undefined = terms.upto && {
    ...exact,
    scheme: "upto",
    extra: { ...extra, assetTransferMethod: "permit2", facilitatorAddress: terms.upto.facilitatorAddress },
  };
  return {
    exact,
    ...(upto ? { upto } : {}),
    accepts: upto ? [upto, exact] : [exact],
    v1: {
      scheme: "exact",
      network: config.network.v1Name,
      maxAmountRequired: amount,
      resource: resourceUrl,
      description,
      mimeType: "application/json",
      payTo: config.walletAddress,
      maxTimeoutSeconds: config.maxTimeoutSeconds,
      asset: config.asset.address,
      extra,
    },
    resource: { url: resourceUrl, description, mimeType: "application/json" },
    ...(upto && terms.eip2612GasSponsoring ? { extensions: declareEip2612GasSponsoringExtension() } : {}),
  };
}

/** Headers and body of a 402 answer carrying `error`. */
export function paymentRequiredAnswer(offer: Offer, error: string) {
  const paymentRequired: PaymentRequired = {
    x402Version: 2,
    error,
    resource: offer.resource,
    accepts: offer.accepts,
    ...(offer.extensions ? { extensions: offer.extensions } : {}),
  };
  return {
    headers: { [HEADERS.paymentRequired]: encodePaymentRequiredHeader(paymentRequired), "Cache-Control": "no-store" },
    body: { x402Version: 1 as const, error, accepts: [offer.v1] },
  };
}

export type Payment =
  | { version: 2; payload: PaymentPayload; requirements: PaymentRequirements; receiptHeader: string }
  | { version: 1; payload: PayloadV1; requirements: RequirementsV1; receiptHeader: string };

export type PaymentRead = { kind: "none" } | { kind: "invalid"; reason: string; message: string } | { kind: "payment"; payment: Payment };

type HeaderBag = Record<string, string | string[] | undefined>;

const first = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

/**
 * Reads the payment a request carries (v2 first) and checks it was made for *this* offer: the price is
 * recomputed from the body, so a payment signed for another body (another price) is refused here.
 */
export function readPayment(headers: HeaderBag, offer: Offer): PaymentRead {
  const v2Header = first(headers[HEADERS.v2Payment.toLowerCase()]);
  const v1Header = first(headers[HEADERS.v1Payment.toLowerCase()]);
  const header = v2Header ?? v1Header;
  if (header === undefined) return { kind: "none" };
  const name = v2Header !== undefined ? HEADERS.v2Payment : HEADERS.v1Payment;

  let decoded: unknown;
  try {
    decoded = decodePaymentSignatureHeader(header.trim());
  } catch {
    return { kind: "invalid", reason: "invalid_payload", message: `${name} is not base64-encoded JSON` };
  }
  if (decoded === null || typeof decoded !== "object") return { kind: "invalid", reason: "invalid_payload", message: `${name} is not a JSON object` };
  const payload = decoded as { x402Version?: unknown; accepted?: unknown; scheme?: unknown; network?: unknown; payload?: unknown };
  const mismatch = (message: string): PaymentRead => ({ kind: "invalid", reason: "payment_requirements_mismatch", message });

  if (payload.x402Version === 2) {
    const requirements = offer.accepts.find((accept) => deepEqual(payload.accepted, accept));
    if (!requirements) {
      return mismatch("the payment's `accepted` requirements match none of this request's (the price follows the request body: ask again without payment)");
    }
    return { kind: "payment", payment: { version: 2, payload: decoded as PaymentPayload, requirements, receiptHeader: HEADERS.v2Receipt } };
  }
  if (payload.x402Version === 1) {
    if (payload.scheme !== offer.v1.scheme || payload.network !== offer.v1.network) {
      return mismatch(`this resource takes scheme "${offer.v1.scheme}" on network "${offer.v1.network}"`);
    }
    const authorization = (payload.payload as { authorization?: { value?: unknown } } | undefined)?.authorization;
    if (authorization?.value !== offer.v1.maxAmountRequired) {
      return mismatch(`the payment's value differs from this request's price ${offer.v1.maxAmountRequired} (the price follows the request body)`);
    }
    return { kind: "payment", payment: { version: 1, payload: decoded as PayloadV1, requirements: offer.v1, receiptHeader: HEADERS.v1Receipt } };
  }
  return { kind: "invalid", reason: "invalid_x402_version", message: `${name} has x402Version ${JSON.stringify(payload.x402Version)}; 1 or 2 expected` };
}

/**
 * The authorization a payment spends, as "<kind>:<payer>:<nonce>", to refuse concurrent reuse of one
 * payment: Permit2's `permit2Authorization` (exact over Permit2, upto; a nonce space per owner, shared
 * by every token) or EIP-3009's `authorization` (a nonce space per token; the proxy charges in one).
 * The facilitator routes on the same shape (a v2 payload with `permit2Authorization` is Permit2, anything
 * else EIP-3009), so this is the authorization it would settle. Undefined: the payload has no such
 * authorization, and the proxy refuses it unverified.
 */
export function authorizationKey(payment: Payment): string | undefined {
  const inner = payment.payload.payload as { permit2Authorization?: unknown; authorization?: unknown } | null | undefined;
  if (inner === null || typeof inner !== "object") return undefined;
  if (payment.version === 2 && "permit2Authorization" in inner) {
    const permit = inner.permit2Authorization as { from?: unknown; nonce?: unknown } | null;
    // A uint256 in decimal or 0x-hex (the facilitator takes both, as the spec's example writes it):
    // "007", "7" and "0x7" are the same nonce on chain, so they are one key.
    if (typeof permit?.from !== "string" || typeof permit.nonce !== "string" || !/^(\d{1,78}|0x[0-9a-fA-F]{1,64})$/.test(permit.nonce)) return undefined;
    return `permit2:${permit.from.toLowerCase()}:${BigInt(permit.nonce).toString()}`;
  }
  const authorization = inner.authorization as { from?: unknown; nonce?: unknown } | null | undefined;
  if (typeof authorization?.from !== "string" || typeof authorization.nonce !== "string") return undefined;
  return `eip3009:${authorization.from.toLowerCase()}:${authorization.nonce.toLowerCase()}`;
}

export function encodeReceipt(settle: SettleResponse): string {
  return encodePaymentResponseHeader(settle);
}
