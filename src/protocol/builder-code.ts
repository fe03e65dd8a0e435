import { concat, toHex, type Hex } from "viem";

/**
 * ERC-8021 builder codes, Schema 2 (the x402 `builder-code` extension, specs/extensions/
 * builder_code.md; @x402/extensions 2.27 `builder-code`): a suffix appended to a transaction's
 * calldata that attributes it, read from the end backwards:
 *
 *   [CBOR map] [its length, 2 bytes big-endian] [schema id 0x02] [marker 0x8021 × 8]
 *
 * This facilitator writes its operator's code (BUILDER_CODE) as the map's `w` (wallet: the party
 * that settled the payment) on every settlement transaction. Attribution only: contracts do not
 * read it (an external call's ABI decoding ignores calldata past its arguments), so it changes
 * nothing in what is paid.
 */

/** The last 16 bytes of every ERC-8021 suffix. */
export const erc8021Marker: Hex = "0x80218021802180218021802180218021";
const schema2Id: Hex = "0x02";

/** A builder code: 1-32 of a-z, 0-9 and _ (BUILDER_CODE_PATTERN in 2.27). */
export const builderCodePattern = /^[a-z0-9_]{1,32}$/;

/** The ERC-8021 Schema 2 suffix `{ "w": code }` (39 bytes for a 16-character code, 56 at most). */
export function builderCodeSuffix(code: string): Hex {
  if (!builderCodePattern.test(code)) throw new Error(`not a builder code: "${code}" (1-32 of a-z, 0-9 and _)`);
  const text = new TextEncoder().encode(code); // ASCII: one byte a character
  // CBOR: a map of one pair (0xa1), the text "w" (0x61 'w'), then the code as text: its length in
  // the head byte up to 23 (0x60 + n), else in one byte after 0x78.
  const textHead = text.length <= 23 ? [0x60 + text.length] : [0x78, text.length];
  const cbor = Uint8Array.from([0xa1, 0x61, 0x77, ...textHead, ...text]);
  return concat([toHex(cbor), toHex(cbor.length, { size: 2 }), schema2Id, erc8021Marker]);
}

/** Calldata with the suffix appended (unchanged without one). */
export function withDataSuffix(data: Hex, suffix: Hex | undefined): Hex {
  return suffix === undefined ? data : concat([data, suffix]);
}
