/**
 * What the proxy can offer besides EIP-3009 `exact`, from the facilitator's /supported, read once at
 * start as @x402/express's middleware does (`initialize()`): the `upto` kind of this network carries
 * `extra.facilitatorAddress`, the key every upto buyer's witness must name, and the proxy copies it
 * into its upto requirements. Once read, the terms stay as they are (the 402 a buyer signed for and
 * the requirements of its paid retry must stay equal); a facilitator that could not be reached at
 * start is asked again, at most once per TERMS_RETRY_MS, when requests come, and meanwhile the proxy
 * offers `exact` only.
 */
import type { SupportedResponse } from "@x402/core/types";
import { getAddress, isAddress } from "viem";
import type { Facilitator } from "./facilitator.js";
import type { OfferTerms } from "./x402.js";

export const TERMS_RETRY_MS = 60_000;
export const EIP2612_GAS_SPONSORING = "eip2612GasSponsoring";

export interface TermsLog {
  info(message: string): void;
  warn(message: string): void;
}

/** The terms /supported gives for `network`, and one line saying what will be offered. */
export function termsFromSupported(supported: SupportedResponse, network: string, uptoWanted: boolean): { terms: OfferTerms; note: string } {
  const eip2612GasSponsoring = (supported.extensions ?? []).includes(EIP2612_GAS_SPONSORING);
  if (!uptoWanted) return { terms: { eip2612GasSponsoring }, note: "UPTO=off: offering exact (EIP-3009) only" };
  const kind = supported.kinds.find((k) => k.x402Version === 2 && k.scheme === "upto" && k.network === network);
  const address = kind?.extra?.facilitatorAddress;
  if (typeof address !== "string" || !isAddress(address, { strict: false })) {
    const why = kind ? "an upto kind without a valid extra.facilitatorAddress" : "no upto kind";
    return { terms: { eip2612GasSponsoring }, note: `the facilitator lists ${why} for ${network}: offering exact (EIP-3009) only` };
  }
  const facilitatorAddress = getAddress(address);
  const gasless = eip2612GasSponsoring ? "; buyers without a Permit2 allowance may add an EIP-2612 permit (eip2612GasSponsoring)" : "";
  return {
    terms: { upto: { facilitatorAddress }, eip2612GasSponsoring },
    note: `offering upto (Permit2, charged for the tokens used, facilitatorAddress ${facilitatorAddress}) then exact (EIP-3009)${gasless}`,
  };
}

export class FacilitatorTerms {
  current: OfferTerms = { eip2612GasSponsoring: false };
  private loaded = false;
  private loading: Promise<void> | undefined;
  private nextTryAtMs = 0;

  constructor(
    private readonly facilitator: Pick<Facilitator, "supported">,
    private readonly network: string,
    private readonly uptoWanted: boolean,
    private readonly log: TermsLog,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Reads /supported (one call in flight at a time); a failure is logged, never thrown. */
  load(): Promise<void> {
    this.loading ??= this.read().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  /** Called per request: asks again, in the background, when the start-up read failed and the retry is due. */
  refreshIfDue(): void {
    if (!this.loaded && this.loading === undefined && this.nowMs() >= this.nextTryAtMs) void this.load();
  }

  private async read(): Promise<void> {
    try {
      const { terms, note } = termsFromSupported(await this.facilitator.supported(), this.network, this.uptoWanted);
      this.current = terms;
      this.loaded = true;
      this.log.info(note);
    } catch (error) {
      this.nextTryAtMs = this.nowMs() + TERMS_RETRY_MS;
      this.log.warn(
        `facilitator /supported failed (${error instanceof Error ? error.message : String(error)}): offering exact (EIP-3009) only, asking again in ${TERMS_RETRY_MS / 1000} s`,
      );
    }
  }
}
