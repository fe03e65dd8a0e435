/**
 * Every reason code we put on the wire is one of the installed x402 SDKs' — or one of our own,
 * listed apart (`ownReasonCodes`) and in README's second table.
 *
 * Where the codes are in 2.27: `@x402/core` 2.27 has no reason-code union (VerifyResponse's
 * `invalidReason` and SettleResponse's `errorReason` are `string`), and `@x402/evm` 2.27 keeps its
 * codes as constants in `src/exact/facilitator/errors.ts` that its entry points do not export. So
 * they are read here from the installed packages' source maps (`sourcesContent`): the exact-EVM
 * facilitator's constants, @x402/core's SETTLEMENT_PENDING_REASON; plus the v1 SDK's runtime
 * `ErrorReasons` (x402 1.2, the spec §9 envelope codes and `duplicate_settlement`). A type-level
 * check would prove nothing while the SDK's type is `string`.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ErrorReasons } from "x402/types";
import { ReasonCode, ownReasonCodes } from "../../../src/protocol/reason-codes.js";
import { installedPackage, sdkSource, stringConstants } from "../../helpers/sdk-sources.js";

const evmErrors = stringConstants(sdkSource("@x402/evm", "@x402/evm/exact/facilitator", "src/exact/facilitator/errors.ts"));
const uptoErrors = stringConstants(sdkSource("@x402/evm", "@x402/evm/upto/facilitator", "src/upto/facilitator/errors.ts"));
const coreServer = sdkSource("@x402/core", "@x402/core/server", "src/server/x402ResourceServer.ts");
const corePending = /const SETTLEMENT_PENDING_REASON = "([^"]+)"/.exec(coreServer)?.[1];

/** Everything the installed SDKs call a reason code. */
const sdkCodes = new Set<string>([...Object.values(evmErrors), ...Object.values(uptoErrors), ...(corePending ? [corePending] : []), ...ErrorReasons]);
const ours = Object.values(ReasonCode) as string[];
const own = new Set<string>(ownReasonCodes);

/**
 * The 2.27 exact-EVM and upto codes we never send, and why. Anything else in errors.ts applies to
 * an EIP-3009 + Permit2 + upto facilitator and must be one of ours: a new SDK code shows up here first.
 */
const notApplicable: Record<string, string> = {
  invalid_exact_evm_missing_eip712_domain: "extra.name/version may be left out: the configured token domain is used",
  invalid_transaction_state: "used by 2.27 for a bad broadcast hash or a reverted receipt; ours says invalid_exact_evm_transaction_failed as its EIP-3009 path does",
};
/** The erc20ApprovalGasSponsoring extension (a pre-signed approve the facilitator broadcasts) is not offered. */
const otherAssetTransferMethods = /^(invalid_)?erc20_approval_/;

describe("reason codes against the installed x402 SDKs", () => {
  it("reads the 2.27 lists from the installed packages", () => {
    expect(installedPackage("@x402/evm", "@x402/evm/exact/facilitator").version).toMatch(/^2\.27\./);
    expect(installedPackage("@x402/core", "@x402/core/server").version).toMatch(/^2\.27\./);
    // A parse that silently found nothing would let every code through: check a few known ones.
    expect(evmErrors).toMatchObject({
      ErrAuthorizationValueMismatch: "invalid_exact_evm_payload_authorization_value_mismatch",
      ErrTransferEventMismatch: "invalid_exact_evm_transfer_event_mismatch",
      ErrAssetNotDeployedContract: "asset_not_deployed_contract",
      ErrFailedToParseSignature: "invalid_exact_evm_failed_to_parse_signature",
      ErrFactoryNotAllowed: "eip6492_factory_not_allowed",
      ErrSmartWalletDeploymentFailed: "smart_wallet_deployment_failed",
    });
    expect(Object.keys(evmErrors).length).toBeGreaterThan(40);
    expect(corePending).toBe("settlement_pending");
  });

  it("sends no code outside the SDKs' lists but those listed as our own", () => {
    expect(ours.filter((code) => !sdkCodes.has(code) && !own.has(code))).toEqual([]);
  });

  it("lists as our own only codes no SDK has (else it should be under the SDK's name)", () => {
    expect([...own].filter((code) => sdkCodes.has(code))).toEqual([]);
    expect([...own].filter((code) => !ours.includes(code))).toEqual([]);
  });

  it("has every 2.27 exact-EVM and upto code that applies to an EIP-3009 + Permit2 facilitator", () => {
    expect(uptoErrors).toMatchObject({ ErrUptoSettlementExceedsAmount: "invalid_upto_evm_payload_settlement_exceeds_amount", ErrUptoFacilitatorMismatch: "upto_facilitator_mismatch" });
    const applicable = [...Object.values(evmErrors), ...Object.values(uptoErrors)].filter((code) => !otherAssetTransferMethods.test(code) && notApplicable[code] === undefined);
    expect(applicable.filter((code) => !ours.includes(code))).toEqual([]);
    // The exclusions are real 2.27 codes (a stale one would hide nothing).
    expect(Object.keys(notApplicable).filter((code) => !Object.values(evmErrors).includes(code))).toEqual([]);
  });
});

describe("README's reason-code tables", () => {
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
  /** The backquoted codes in the first column of the table whose header starts with `heading`. */
  function tableCodes(heading: string): string[] {
    const start = readme.indexOf(`| ${heading}`);
    expect(start, `README has a table headed "${heading}"`).toBeGreaterThanOrEqual(0);
    const rows = readme.slice(start).split("\n").slice(2);
    const table = rows.slice(0, rows.findIndex((line) => !line.startsWith("|")));
    return table.flatMap((row) => [...row.split("|")[1]!.matchAll(/`([a-z0-9_]+)`/g)].map((match) => match[1]!));
  }

  it("documents each SDK code we send in the first table and each of our own in the second", () => {
    const sdkTable = tableCodes("reason (x402 2.27 / spec)");
    const ownTable = tableCodes("reason (this facilitator's own)");
    expect([...sdkTable].sort()).toEqual(ours.filter((code) => !own.has(code)).sort());
    expect([...ownTable].sort()).toEqual([...own].sort());
  });
});
