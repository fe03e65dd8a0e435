import { beforeAll, describe, expect, it } from "vitest";
import { PayerFailuresRepository } from "../../../src/store/payer-failures-repo.js";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { useMigratedDatabase, withPgClient } from "../../helpers/database.js";
import { newClaim, randomAddress } from "../../helpers/settlement-rows.js";

/**
 * A payer's on-chain failures (migrations 0007, 0013): the cooldown of payers with code
 * (payer_chain_failures) and the one-at-a-time window of any payer (payer_failed_calls), which
 * SettlementsRepository.reserveFunds reads under the payer's lock. Windows are judged on Postgres'
 * clock; a record per (chain, payer), its count kept.
 */
const store = useMigratedDatabase("payer_failures");
let failures: PayerFailuresRepository;
let settlements: SettlementsRepository;
const hourMs = 3_600_000;

beforeAll(() => {
  failures = new PayerFailuresRepository(store.handle.db);
  settlements = new SettlementsRepository(store.handle.db);
});

/** What reserveFunds reports for a fresh claim of `payer` with the given window. */
async function oneAtATime(payer: string, windowMs: number, chainId = 84532): Promise<boolean> {
  const claim = (await settlements.claim(newClaim({ payer, chainId, network: `eip155:${chainId}` })))!;
  return (await settlements.reserveFunds(claim, () => false, { oneAtATimeWindowMs: windowMs })).others.oneAtATime;
}

async function backdate(table: string, payer: string, byMs: number): Promise<void> {
  await withPgClient(store.database.url, (c) => c.query(`update ${table} set last_failed_at = now() - make_interval(secs => $2) where payer = $1`, [payer.toLowerCase(), byMs / 1000]));
}

describe("payer failures", () => {
  it("one at a time: after a failed call, within the window, per (chain, payer); never with window 0", async () => {
    const payer = randomAddress();
    expect(await oneAtATime(payer, hourMs)).toBe(false);
    await failures.recordFailedCall(84532, payer.toUpperCase().replace("0X", "0x"));
    expect(await oneAtATime(payer, hourMs)).toBe(true);
    expect(await oneAtATime(payer, 0)).toBe(false);
    expect(await oneAtATime(payer, hourMs, 8453)).toBe(false); // another chain
    expect(await oneAtATime(randomAddress(), hourMs)).toBe(false); // another payer
    await backdate("payer_failed_calls", payer, hourMs + 60_000);
    expect(await oneAtATime(payer, hourMs)).toBe(false); // the window has passed
    await failures.recordFailedCall(84532, payer);
    expect(await oneAtATime(payer, hourMs)).toBe(true); // a new failure opens it again
    const rows = await withPgClient(store.database.url, async (c) => (await c.query("select failures from payer_failed_calls where payer = $1", [payer.toLowerCase()])).rows);
    expect(rows).toEqual([{ failures: 2 }]);
  });

  it("the cooldown is its own record: a failed call alone does not cool a payer down, a code failure does", async () => {
    const payer = randomAddress();
    await failures.recordFailedCall(84532, payer);
    expect(await failures.codeFailureWithin(84532, payer, hourMs)).toBe(false);
    await failures.recordCodeFailure(84532, payer);
    expect(await failures.codeFailureWithin(84532, payer, hourMs)).toBe(true);
    await backdate("payer_chain_failures", payer, hourMs + 60_000);
    expect(await failures.codeFailureWithin(84532, payer, hourMs)).toBe(false);
  });
});
