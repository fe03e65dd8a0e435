import { keccak256, recoverAddress, stringToHex, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, describe, expect, it } from "vitest";
import { RecoverPool, recoveriesBeforeWorkers } from "../../../src/exact-evm/recover-pool.js";

const account = privateKeyToAccount(keccak256(stringToHex("recover-pool.test/payer")));
const digest = (label: string): Hex => keccak256(stringToHex(label));
// native: false — viem on the workers, the path taken when libsecp256k1 does not load (recover-fast.ts).
const pool = new RecoverPool({ native: false });

afterAll(() => pool.close());

async function waitForWorkers(target: RecoverPool, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // The first calls (inline) start the workers; until they have loaded viem, recoveries run inline.
  while (target.stats().workersReady === 0 && Date.now() < deadline) {
    await target.recover(digest("warm"), await account.sign({ hash: digest("warm") }));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(target.stats().workersReady).toBeGreaterThan(0);
}

describe("RecoverPool (viem's recoverAddress on worker threads)", () => {
  it("recovers on the workers what viem recovers inline, concurrently", async () => {
    await waitForWorkers(pool, 10_000);
    const before = pool.stats().recoveredOnWorkers;
    const signed = await Promise.all(Array.from({ length: 32 }, async (_, i) => ({ hash: digest(`p${i}`), signature: await account.sign({ hash: digest(`p${i}`) }) })));
    const onPool = await Promise.all(signed.map(({ hash, signature }) => pool.recover(hash, signature)));
    const inline = await Promise.all(signed.map(({ hash, signature }) => recoverAddress({ hash, signature })));
    expect(onPool).toEqual(inline);
    expect(new Set(onPool)).toEqual(new Set([account.address]));
    expect(pool.stats().recoveredOnWorkers - before).toBeGreaterThan(0);
  });

  it("throws viem's error for a signature that does not recover, from a worker as inline", async () => {
    await waitForWorkers(pool, 10_000);
    const firstLine = (promise: Promise<unknown>) => promise.then(() => "resolved", (error: Error) => error.message.split("\n")[0]);
    const bad = `0x${"00".repeat(65)}` as Hex;
    expect(await firstLine(pool.recover(digest("bad"), bad))).toBe(await firstLine(recoverAddress({ hash: digest("bad"), signature: bad })));
    expect(await firstLine(pool.recover(digest("bad"), "0x1234"))).toBe("invalid signature length");
  });

  it("keeps recovering (inline, then on new workers) after the workers are stopped", async () => {
    await pool.stopWorkers();
    const signature = await account.sign({ hash: digest("after-stop") });
    expect(await pool.recover(digest("after-stop"), signature)).toBe(account.address);
    await waitForWorkers(pool, 10_000);
    expect(await pool.recover(digest("after-stop"), signature)).toBe(account.address);
  });

  it("after close, recovers inline only and starts no worker", async () => {
    const closed = new RecoverPool({ native: false });
    const signature = await account.sign({ hash: digest("closed") });
    for (let i = 0; i < recoveriesBeforeWorkers; i += 1) await closed.recover(digest("closed"), signature);
    await closed.close();
    const recovered = await Promise.all(Array.from({ length: 8 }, () => closed.recover(digest("closed"), signature)));
    expect(new Set(recovered)).toEqual(new Set([account.address]));
    // Past the threshold, an open pool would have started its workers on the first of these.
    expect(closed.stats()).toMatchObject({ workersRunning: 0, recoveredOnWorkers: 0, recoveredInline: recoveriesBeforeWorkers + 8 });
  });
});
