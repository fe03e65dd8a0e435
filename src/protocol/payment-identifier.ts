/**
 * The x402 `payment-identifier` extension (specs/extensions/payment_identifier.md; @x402/extensions
 * 2.27 `payment-identifier`): a v2 client puts an idempotency key in
 * `paymentPayload.extensions["payment-identifier"].info.id`. Here it is one more way to send the
 * `Idempotency-Key` of /settle (http/payment-routes.ts): the same key space, the same record.
 */

/** The extension's key in `extensions` and in `/supported`'s `extensions` list. */
export const paymentIdentifierExtension = "payment-identifier";

/**
 * The id's format (PAYMENT_ID_MIN_LENGTH, PAYMENT_ID_MAX_LENGTH and PAYMENT_ID_PATTERN in 2.27):
 * 16-128 of A-Z a-z 0-9 _ -. Every such id is also a valid Idempotency-Key (1-255 printable ASCII).
 */
export const paymentIdPattern = /^[A-Za-z0-9_-]{16,128}$/;

export type PaymentIdentifier = { ok: true; id: string | undefined } | { ok: false; message: string };

/**
 * The id of a v2 payload, if it carries one. An extension without an id (the resource server's
 * declaration echoed as is, `info: { required: false }`) carries none. An id that is there but not
 * of the format is refused rather than ignored: the caller asked for idempotency and would not get
 * it. v1 payloads have no extensions; anything there is not read.
 */
export function paymentIdentifierOf(paymentPayload: unknown): PaymentIdentifier {
  if (!isObject(paymentPayload) || paymentPayload.x402Version !== 2) return { ok: true, id: undefined };
  const extensions = paymentPayload.extensions;
  const extension = isObject(extensions) ? extensions[paymentIdentifierExtension] : undefined;
  const info = isObject(extension) ? extension.info : undefined;
  const id = isObject(info) ? info.id : undefined;
  if (id === undefined) return { ok: true, id: undefined };
  if (typeof id !== "string" || !paymentIdPattern.test(id)) {
    return { ok: false, message: `extensions["${paymentIdentifierExtension}"].info.id must be 16-128 characters of A-Z, a-z, 0-9, _ and -` };
  }
  return { ok: true, id };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
