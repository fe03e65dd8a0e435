import { describe, expect, it } from "vitest";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { withPgClient } from "../../helpers/database.js";
import { useMigratedDatabase } from "../../helpers/migrations.js";
import { newClaim, randomAddress } from "../../helpers/settlement-rows.js";

/**
 * 0012 adds funds reservations: settlements.funds_reserved and a partial index on (chain_id, asset,
 * payer) over unfinished reserved rows. A database at 0011 holding an unfinished claim, as the code
 * before 0012 wrote it, migrates with every row false (not counted: an older instance reserves
 * nothing), and reservations then sum only reserved rows, under the payer's lock.
 */
const lastTagBefore = "0011_permit_lanes";
const payer = randomAddress();
const token = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";

/** The pre-0012 claim, as the 0011 code's settlements-repo wrote it: no funds_reserved. */
const oldClaimSql = `
  insert into settlements (chain_id, nonce_contract, asset, payer, nonce, scheme, transfer_method, pay_to, value_atomic, permitted_atomic,
                           valid_after_seconds, valid_before_seconds, authorization_digest, signature, x402_version, network, status, lease_until, eip2612_permit)
  values ($1, $2, $2, $3, $4, 'exact', 'eip3009', $5, 1000, 1000, 0, 9999999999, $6, '0x00', 2, 'eip155:84532', 'claimed', now() + interval '1 minute', false)
  returning id`;

const database = useMigratedDatabase({
  label: "migration_0012",
  lastTagBefore,
  async seed(client) {
    const claim = newClaim({ payer, asset: token });
    expect((await client.query(oldClaimSql, [claim.chainId, token, payer, claim.nonce, claim.payTo, claim.authorizationDigest])).rowCount).toBe(1);
  },
});

describe("migration 0012", () => {
  it("marks every earlier row as reserving nothing, the column NOT NULL", async () => {
    const rows = await withPgClient(database.url, (client) => client.query("select status, funds_reserved from settlements"));
    expect(rows.rows).toEqual([{ status: "claimed", funds_reserved: false }]);
    const column = await withPgClient(database.url, (client) =>
      client.query("select is_nullable, column_default from information_schema.columns where table_name = 'settlements' and column_name = 'funds_reserved'"),
    );
    expect(column.rows).toEqual([{ is_nullable: "NO", column_default: "false" }]);
  });

  it("indexes (chain_id, asset, payer) over unfinished reserved rows", async () => {
    const index = await withPgClient(database.url, (client) => client.query("select indexdef from pg_indexes where indexname = 'settlements_funds_reserved'"));
    expect(index.rows).toHaveLength(1);
    const definition = String(index.rows[0].indexdef);
    expect(definition).toMatch(/^CREATE INDEX settlements_funds_reserved ON public\.settlements USING btree \(chain_id, asset, payer\) WHERE/);
    for (const status of ["claimed", "signed", "submitted"]) expect(definition).toContain(`'${status}'`);
    for (const status of ["confirmed", "failed"]) expect(definition).not.toContain(`'${status}'`);
  });

  it("reserves against reserved rows only: the earlier unreserved claim is not counted, a reserved one is", async () => {
    const repo = new SettlementsRepository(database.db);
    const first = (await repo.claim(newClaim({ payer, asset: token, valueAtomic: 400n })))!;
    const seen: bigint[] = [];
    expect(await repo.reserveFunds(first, (others) => (seen.push(others.valueAtomic), others.count === 0))).toMatchObject({ reserved: true, others: { count: 0 } });
    const second = (await repo.claim(newClaim({ payer, asset: token, valueAtomic: 300n })))!;
    const refused = await repo.reserveFunds(second, (others) => (seen.push(others.valueAtomic), others.valueAtomic + 300n <= 500n));
    expect(refused).toMatchObject({ reserved: false, others: { count: 1, valueAtomic: 400n } });
    expect(refused.waitOn?.id).toBe(first.id);
    expect(seen).toEqual([0n, 400n]);
    // A failed row is no longer counted; its re-claim starts unreserved.
    await repo.failClaim(first.id, { errorReason: "service_unavailable" as never, errorMessage: "test" }, { attempt: first.attempt });
    expect((await repo.findById(first.id))?.fundsReserved).toBe(true); // failed: no longer counted
    expect(await repo.reserveFunds(second, (others) => others.count === 0)).toMatchObject({ reserved: true });
    const reclaimed = await repo.claim(newClaim({ payer, asset: token, valueAtomic: 400n, nonce: first.nonce as `0x${string}`, authorizationDigest: first.authorizationDigest as `0x${string}` }));
    expect(reclaimed).toMatchObject({ id: first.id, attempt: first.attempt + 1, status: "claimed", fundsReserved: false });
    // A reserved row gone final is counted only with countFinalSince (a reservation whose funds were
    // read before it went final: the read may not show it spent).
    const { at } = await repo.reserveFunds(reclaimed!, () => false);
    await repo.failClaim(second.id, { errorReason: "service_unavailable" as never, errorMessage: "test" }, { attempt: second.attempt });
    const third = (await repo.claim(newClaim({ payer, asset: token, valueAtomic: 1n })))!;
    expect((await repo.reserveFunds(third, () => false)).others).toMatchObject({ count: 0, valueAtomic: 0n });
    expect((await repo.reserveFunds(third, () => false, { countFinalSince: at })).others).toMatchObject({ count: 1, valueAtomic: 300n });
  });
});
