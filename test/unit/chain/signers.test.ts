import { describe, expect, it } from "vitest";
import { createSignerPool } from "../../../src/chain/signers.js";
import { DependencyUnavailableError, SignersBusyError } from "../../../src/errors.js";
import { keys } from "../../helpers/chain.js";

describe("SignerPool.acquire", () => {
  it("throws SignersBusyError (503 service_unavailable: load), not an RPC outage, when every signer is saturated", async () => {
    const pool = createSignerPool([keys.facilitator, keys.facilitator2], 1);
    const leases = [await pool.acquire(Date.now()), await pool.acquire(Date.now())];
    expect(new Set(leases.map((lease) => lease.account.address)).size).toBe(2);
    const busy = await pool.acquire(Date.now() + 20).catch((error: unknown) => error);
    expect(busy).toBeInstanceOf(SignersBusyError);
    expect(busy).not.toBeInstanceOf(DependencyUnavailableError);
    expect(busy).toMatchObject({ code: "service_unavailable", httpStatus: 503, message: "all 2 signer(s) have 1 settlements in flight; retry shortly" });
  });

  it("hands a released slot to a waiter", async () => {
    const pool = createSignerPool([keys.facilitator], 1);
    const first = await pool.acquire(Date.now());
    const waiting = pool.acquire(Date.now() + 5_000);
    first.release();
    expect((await waiting).account.address).toBe(first.account.address);
  });
});
