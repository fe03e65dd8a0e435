import { keccak256, recoverAddress, stringToHex, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, describe, expect, it } from "vitest";
import { recoverSigner, recoveryPoolStats, stopRecoveryWorkers } from "../../../src/exact-evm/recover-pool.js";

const account = privateKeyToAccount(keccak256(stringToHex("recover-pool.test/payer")));
const digest = (label: string): Hex => keccak256(stringToHex(label));

afterAll(() => stopRecoveryWorkers());

async function waitForWorkers(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // The first call starts the workers; until they have loaded viem, recoveries run inline.
  while (recoveryPoolStats().workersReady === 0 && Date.now() < deadline) {
    await recoverSigner(digest("warm"), await account.sign({ hash: digest("warm") }));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(recoveryPoolStats().workersReady).toBeGreaterThan(0);
}

describe("recoverSigner (viem's recoverAddress on worker threads)", () => {
  it("recovers on the workers what viem recovers inline, concurrently", async () => {
    await waitForWorkers(10_000);
    const before = recoveryPoolStats().recoveredOnWorkers;
    const signed = await Promise.all(Array.from({ length: 32 }, async (_, i) => ({ hash: digest(`p${i}`), signature: await account.sign({ hash: digest(`p${i}`) }) })));
    const onPool = await Promise.all(signed.map(({ hash, signature }) => recoverSigner(hash, signature)));
    const inline = await Promise.all(signed.map(({ hash, signature }) => recoverAddress({ hash, signature })));
    expect(onPool).toEqual(inline);
    expect(new Set(onPool)).toEqual(new Set([account.address]));
    expect(recoveryPoolStats().recoveredOnWorkers - before).toBeGreaterThan(0);
  });

  it("throws viem's error for a signature that does not recover, from a worker as inline", async () => {
    await waitForWorkers(10_000);
    const firstLine = (promise: Promise<unknown>) => promise.then(() => "resolved", (error: Error) => error.message.split("\n")[0]);
    const bad = `0x${"00".repeat(65)}` as Hex;
    expect(await firstLine(recoverSigner(digest("bad"), bad))).toBe(await firstLine(recoverAddress({ hash: digest("bad"), signature: bad })));
    expect(await firstLine(recoverSigner(digest("bad"), "0x1234"))).toBe("invalid signature length");
  });

  it("keeps recovering (inline, then on new workers) after the workers are stopped", async () => {
    await stopRecoveryWorkers();
    const signature = await account.sign({ hash: digest("after-stop") });
    expect(await recoverSigner(digest("after-stop"), signature)).toBe(account.address);
    await waitForWorkers(10_000);
    expect(await recoverSigner(digest("after-stop"), signature)).toBe(account.address);
  });
});
