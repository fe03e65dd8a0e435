import { describe, expect, it } from "vitest";
import { createSignerPool } from "../../../src/chain/signers.js";
import { DependencyUnavailableError, SignerNotHeldError, SignersBusyError } from "../../../src/errors.js";
import { keys } from "../../helpers/chain.js";

const chainId = 84532;

describe("SignerPool.acquire (settlements waiting to be sent)", () => {
  it("throws SignersBusyError (503 service_unavailable: load), not an RPC outage, when every signer has as many waiting as its transactions could carry", async () => {
    const pool = createSignerPool([keys.facilitator, keys.facilitator2], { inFlightPerSignerMax: 1, settleBatchMax: 1 });
    const leases = [await pool.acquire(Date.now()), await pool.acquire(Date.now())];
    expect(new Set(leases.map((lease) => lease.account.address)).size).toBe(2);
    const busy = await pool.acquire(Date.now() + 20).catch((error: unknown) => error);
    expect(busy).toBeInstanceOf(SignersBusyError);
    expect(busy).not.toBeInstanceOf(DependencyUnavailableError);
    expect(busy).toMatchObject({ code: "service_unavailable", httpStatus: 503, message: "all 2 signer(s) have 1 settlements waiting to be sent; retry shortly" });
  });

  it("hands a released lease to a waiter", async () => {
    const pool = createSignerPool([keys.facilitator], { inFlightPerSignerMax: 1, settleBatchMax: 1 });
    const first = await pool.acquire(Date.now());
    const waiting = pool.acquire(Date.now() + 5_000);
    first.release();
    expect((await waiting).account.address).toBe(first.account.address);
  });

  it("lets IN_FLIGHT_PER_SIGNER_MAX × SETTLE_BATCH_MAX settlements wait per key: a burst fills batches, it does not wait for blocks", async () => {
    const pool = createSignerPool([keys.facilitator], { inFlightPerSignerMax: 2, settleBatchMax: 4 });
    const leases = await Promise.all(Array.from({ length: 8 }, () => pool.acquire(Date.now())));
    expect(leases).toHaveLength(8);
    await expect(pool.acquire(Date.now())).rejects.toBeInstanceOf(SignersBusyError);
  });
});

describe("SignerPool.acquireFor (an upto permit names the key that must send it)", () => {
  it("leases exactly that key, even when another one is less loaded", async () => {
    const pool = createSignerPool([keys.facilitator, keys.facilitator2], { inFlightPerSignerMax: 2, settleBatchMax: 1 });
    const [, second] = pool.addresses() as [`0x${string}`, `0x${string}`];
    const leases = [await pool.acquireFor(second, Date.now()), await pool.acquireFor(second.toLowerCase() as `0x${string}`, Date.now())];
    expect(leases.map((lease) => lease.account.address)).toEqual([second, second]);
    // That key is full; the other one still takes ordinary settlements.
    await expect(pool.acquireFor(second, Date.now() + 20)).rejects.toBeInstanceOf(SignersBusyError);
    expect((await pool.acquire(Date.now())).account.address).not.toBe(second);
  });

  it("waits for room on that key and is woken by its release, not by another key's", async () => {
    const pool = createSignerPool([keys.facilitator, keys.facilitator2], { inFlightPerSignerMax: 1, settleBatchMax: 1 });
    const [first, second] = pool.addresses() as [`0x${string}`, `0x${string}`];
    const held = await pool.acquireFor(second, Date.now());
    const other = await pool.acquireFor(first, Date.now());
    let got = false;
    const waiting = pool.acquireFor(second, Date.now() + 5_000).then((lease) => ((got = true), lease));
    other.release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(got).toBe(false);
    held.release();
    expect((await waiting).account.address).toBe(second);
  });

  it("throws at once for an address that is not one of ours", async () => {
    const pool = createSignerPool([keys.facilitator], { inFlightPerSignerMax: 1, settleBatchMax: 1 });
    const unknown = pool.acquireFor("0x000000000000000000000000000000000000dEaD", Date.now() + 5_000);
    await expect(unknown).rejects.toBeInstanceOf(SignerNotHeldError);
    await expect(unknown).rejects.toMatchObject({ code: "service_unavailable", httpStatus: 503, signer: "0x000000000000000000000000000000000000dEaD" });
  });
});

describe("SignerPool transaction slots (transactions between send and verdict)", () => {
  it("bounds transactions per key and chain, not settlements: a slot frees when every settlement it carries let go", async () => {
    const pool = createSignerPool([keys.facilitator], { inFlightPerSignerMax: 2, settleBatchMax: 32 });
    const [address] = pool.addresses() as [`0x${string}`];
    const first = (await pool.acquireTransaction(chainId, address, Date.now()))!;
    const second = (await pool.acquireTransaction(chainId, address, Date.now()))!;
    const firstShares = first.shares(3);
    second.shares(1);
    expect(pool.transactionsInFlight()[address]).toBe(2);
    expect(pool.inFlight()[address]).toBe(4); // settlements carried by the two transactions
    // Full on this chain, free on another: nonces are per chain.
    expect(await pool.acquireTransaction(chainId, address, Date.now() + 20)).toBeUndefined();
    expect(await pool.acquireTransaction(1, address, Date.now())).toBeDefined();

    let freed = false;
    const waitingForFree = pool.transactionSlotFree(chainId, address, Date.now() + 5_000).then(() => (freed = true));
    const waitingForSlot = pool.acquireTransaction(chainId, address, Date.now() + 5_000);
    firstShares[0]!();
    firstShares[1]!();
    firstShares[1]!(); // idempotent: the same share twice is one
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(freed).toBe(false);
    firstShares[2]!();
    expect(await waitingForSlot).toBeDefined();
    await waitingForFree;
    expect(pool.inFlight()[address]).toBe(1);
  });

  it("a transaction that carries nothing frees its slot at once; a wait for a slot ends at its deadline", async () => {
    const pool = createSignerPool([keys.facilitator], { inFlightPerSignerMax: 1, settleBatchMax: 1 });
    const [address] = pool.addresses() as [`0x${string}`];
    (await pool.acquireTransaction(chainId, address, Date.now()))!.shares(0);
    const slot = (await pool.acquireTransaction(chainId, address, Date.now()))!;
    slot.shares(1);
    await pool.transactionSlotFree(chainId, address, Date.now() + 30); // resolves at the deadline, taking nothing
    expect(await pool.acquireTransaction(chainId, address, Date.now() + 30)).toBeUndefined();
  });
});
