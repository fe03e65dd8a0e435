import type { Address, PublicClient } from "viem";
import { hasCode } from "../chain/code.js";
import { throwIfTransportFailure } from "../chain/rpc-errors.js";
import type { Clock } from "../clock.js";
import { permit2Address } from "../contracts/permit2.js";
import type { Scheme } from "../protocol/types.js";
import { proxyOf } from "./checks.js";

/** A chain found without one of the contracts is asked again after this long (it may be deployed later). */
export const permit2AbsentRecheckMs = 5 * 60_000;

/**
 * Whether Permit2 and a scheme's x402 proxy have code on a chain. Their addresses are the same
 * everywhere (CREATE2), but nothing guarantees a deployment on every chain: without it a Permit2
 * payment could never settle (a call to an empty address even "succeeds"), so verify refuses it
 * (`permit2_proxy_not_deployed`) and /supported leaves `upto` out. Code, once seen, stays
 * (EIP-6780): a positive answer is kept for the process' life, a negative one for
 * permit2AbsentRecheckMs. An RPC outage is a 503 for verify and settle; /supported catches it.
 */
export class Permit2Contracts {
  private readonly known = new Map<string, { present: boolean; checkedAtMs: number }>();

  constructor(private readonly clock: Pick<Clock, "monotonicMs">) {}

  async deployed(chainId: number, client: PublicClient, scheme: Scheme): Promise<boolean> {
    const [permit2, proxy] = await Promise.all([this.present(chainId, client, permit2Address), this.present(chainId, client, proxyOf(scheme))]);
    return permit2 && proxy;
  }

  private async present(chainId: number, client: PublicClient, address: Address): Promise<boolean> {
    const key = `${chainId}:${address}`;
    const cached = this.known.get(key);
    if (cached && (cached.present || this.clock.monotonicMs() - cached.checkedAtMs < permit2AbsentRecheckMs)) return cached.present;
    const present = await hasCode(client, address).catch((error: unknown) => {
      throwIfTransportFailure(error, `reading the code at ${address}`);
      throw error;
    });
    this.known.set(key, { present, checkedAtMs: this.clock.monotonicMs() });
    return present;
  }
}
