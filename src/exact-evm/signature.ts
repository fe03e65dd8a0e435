import { isErc6492Signature, parseErc6492Signature, parseSignature, size, type Address, type Hex } from "viem";
import { approximateStringBytes, LruCache, lruEntryOverheadBytes } from "../util/lru-cache.js";
import type { RecoverSigner } from "./recover-pool.js";

/** secp256k1 group order / 2: an `s` above it is the malleated twin of a valid signature (EIP-2). */
const secp256k1HalfOrder = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

export type SignatureKind = "ecdsa" | "smart-wallet";

export function signatureKind(signature: Hex): SignatureKind {
  return size(signature) === 65 ? "ecdsa" : "smart-wallet";
}

/**
 * Signers already recovered, by digest ‖ signature. Recovery is a pure function of those bytes, so a
 * hit is always the right answer; it saves the recovery (~0.1 ms with libsecp256k1, several ms on
 * viem's JS fallback: recover-fast.ts) when the same payment is verified again or verified and then
 * settled. Only signatures that
 * passed every check below are stored, so a hit implies them. Bounded by bytes (~7,000 entries of a
 * 198-character key: seconds of history at a thousand cold verifies a second, which is all a verify →
 * settle needs) and by count.
 */
export const recoveredSignersMax = 10_000;
export const recoveredSignersBytesMax = 4 * 1024 * 1024;
const recoveredSigners = new LruCache<string, Address>(recoveredSignersMax, {
  maxBytes: recoveredSignersBytesMax,
  sizeOf: (key, signer) => approximateStringBytes(key) + approximateStringBytes(signer) + lruEntryOverheadBytes,
});

/**
 * viem's parseSignature, remembered for the last few signatures: verify parses each 65-byte
 * signature twice (the low-s check here, the simulation's calldata in transfer-call.ts), and settle
 * again. Pure, so a hit is always right; a failure is not remembered (it throws again).
 */
const parsedSignaturesMax = 256;
const parsedSignatures = new LruCache<Hex, ReturnType<typeof parseSignature>>(parsedSignaturesMax);

export function parseSignatureMemo(signature: Hex): ReturnType<typeof parseSignature> {
  let parsed = parsedSignatures.get(signature);
  if (parsed === undefined) {
    parsed = parseSignature(signature);
    parsedSignatures.set(signature, parsed);
  }
  return parsed;
}

/**
 * `unparseable`: the bytes are no (r, s, v) signature at all — a v byte outside {0, 1, 27, 28}, or
 * an (r, s) that recovers no key — so there is no signer to compare (2.27's
 * invalid_exact_evm_failed_to_parse_signature). `malleable`: a real signature, refused (high s).
 */
export type EcdsaCheck =
  | { ok: true; signer: Address }
  | { ok: false; failure: "unparseable" | "malleable"; message: string };

/**
 * Checks a 65-byte signature locally: low-s, v in {0, 1, 27, 28}, and recovers the signer of `digest`
 * with `recover` (the services' RecoverPool: recoverAddressFast, or viem on workers; or recoverInline).
 * High-s is refused even though ecrecover accepts it: USDC's ECRecover reverts on it, and a
 * malleated copy must never look like a second, different payment.
 */
export async function checkEcdsaSignature(digest: Hex, signature: Hex, recover: RecoverSigner): Promise<EcdsaCheck> {
  const cacheKey = `${digest}${signature}`;
  const known = recoveredSigners.get(cacheKey);
  if (known !== undefined) return { ok: true, signer: known };
  let parsed: ReturnType<typeof parseSignature>;
  try {
    parsed = parseSignatureMemo(signature);
  } catch (error) {
    return { ok: false, failure: "unparseable", message: `signature is not a valid (r, s, v) signature: ${(error as Error).message.split("\n")[0]}` };
  }
  if (BigInt(parsed.s) > secp256k1HalfOrder) return { ok: false, failure: "malleable", message: "signature has a high s value (malleable); sign again with low s" };
  const v = Number(`0x${signature.slice(130, 132)}`);
  if (![0, 1, 27, 28].includes(v)) return { ok: false, failure: "unparseable", message: `signature v byte ${v} is not 27 or 28` };
  let signer: Address;
  try {
    signer = await recover(digest, signature);
  } catch (error) {
    return { ok: false, failure: "unparseable", message: `signature does not recover: ${(error as Error).message.split("\n")[0]}` };
  }
  recoveredSigners.set(cacheKey, signer);
  return { ok: true, signer };
}

/** ERC-6492 wrapper info, when the signature carries a factory deployment for a counterfactual wallet. */
export function erc6492Deployment(signature: Hex): { factory: Address; factoryData: Hex; innerSignature: Hex } | undefined {
  try {
    const parsed = parseErc6492Signature(signature);
    if (!parsed.address || !parsed.data || /^0x0{40}$/i.test(parsed.address)) return undefined;
    return { factory: parsed.address, factoryData: parsed.data, innerSignature: parsed.signature };
  } catch {
    return undefined;
  }
}

/**
 * Ends with the ERC-6492 magic suffix but the wrapper (factory, calldata, inner signature) does not
 * ABI-decode: a signature that cannot be parsed, not one a wallet could judge.
 */
export function isMalformedErc6492(signature: Hex): boolean {
  if (!isErc6492Signature(signature)) return false;
  try {
    parseErc6492Signature(signature);
    return false;
  } catch {
    return true;
  }
}

/** The signature to hand the token: ERC-6492 wrapping removed (the token only knows ERC-1271). */
export function tokenSignature(signature: Hex): Hex {
  return erc6492Deployment(signature)?.innerSignature ?? signature;
}
