import { getAddress, maxUint256, type Address, type Hex } from "viem";
import type { Eip2612Extension } from "./types.js";

/** The extension's key in `paymentPayload.extensions` (@x402/evm 2.27 EIP2612_GAS_SPONSORING_KEY). */
export const eip2612GasSponsoringExtension = "eip2612GasSponsoring";

const fields = ["from", "asset", "spender", "amount", "nonce", "deadline", "signature", "version"] as const;
const addressPattern = /^0x[a-fA-F0-9]{40}$/;
/** 2.27 takes any run of digits; 78 bound it to what a uint256 can be (bigger never fits the call). */
const numericPattern = /^[0-9]{1,78}$/;
/** 2.27 takes any hex; a 65-byte r‖s‖v is all settleWithPermit can use (checked where it is split). */
const hexPattern = /^0x[a-fA-F0-9]{2,260}$/;
const versionPattern = /^[0-9]{1,9}(\.[0-9]{1,9}){0,7}$/;

/**
 * The payload's `eip2612GasSponsoring` extension, as @x402/evm 2.27 reads it: `info` with all eight
 * fields present and non-empty, else the extension counts as absent (no error, as 2.27's
 * extractEip2612GasSponsoringInfo); a field of the wrong form is `invalid_eip2612_extension_format`
 * (validateEip2612GasSponsoringInfo). Nothing here checks it against the payment: checkEip2612Terms and checkPermit2Window in permit2/checks.ts.
 */
export function eip2612ExtensionOf(extensions: unknown): Eip2612Extension | undefined {
  if (extensions === null || typeof extensions !== "object") return undefined;
  const extension = (extensions as Record<string, unknown>)[eip2612GasSponsoringExtension];
  if (extension === null || typeof extension !== "object") return undefined;
  const info = (extension as { info?: unknown }).info;
  if (info === null || typeof info !== "object") return undefined;
  const raw = info as Record<string, unknown>;
  if (!fields.every((field) => Boolean(raw[field]))) return undefined;
  const text = Object.fromEntries(fields.map((field) => [field, typeof raw[field] === "string" ? (raw[field] as string) : ""])) as Record<(typeof fields)[number], string>;
  const wellFormed =
    addressPattern.test(text.from) &&
    addressPattern.test(text.asset) &&
    addressPattern.test(text.spender) &&
    numericPattern.test(text.amount) &&
    numericPattern.test(text.nonce) &&
    numericPattern.test(text.deadline) &&
    hexPattern.test(text.signature) &&
    versionPattern.test(text.version);
  const amountAtomic = wellFormed ? BigInt(text.amount) : 0n;
  const nonce = wellFormed ? BigInt(text.nonce) : 0n;
  const deadlineSeconds = wellFormed ? BigInt(text.deadline) : 0n;
  if (!wellFormed || amountAtomic > maxUint256 || nonce > maxUint256 || deadlineSeconds > maxUint256) {
    return { ok: false, message: "the eip2612GasSponsoring extension's info has a field of the wrong form" };
  }
  return {
    ok: true,
    permit: {
      from: getAddress(text.from) as Address,
      asset: getAddress(text.asset) as Address,
      spender: getAddress(text.spender) as Address,
      amountAtomic,
      nonce,
      deadlineSeconds,
      signature: text.signature.toLowerCase() as Hex,
      version: text.version,
    },
  };
}
