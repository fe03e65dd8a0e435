import { describe, expect, it } from "vitest";
import { PermitLaneTakenError } from "../../../src/errors.js";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { withPgClient } from "../../helpers/database.js";
import { useMigratedDatabase } from "../../helpers/migrations.js";
import { newClaim, randomAddress } from "../../helpers/settlement-rows.js";

/**
 * 0011 adds the EIP-2612 permit lane: settlements.eip2612_permit and a partial unique index on
 * (chain_id, asset, payer) over unfinished rows carrying a permit. A database at 0010 holding rows
 * as the code before 0011 wrote them — one Permit2 claim still unfinished — migrates with every row
 * false (no lane taken, so the index builds on any data), and a pre-0011 instance's claim, which
 * does not name the column, still works after it (a rolling upgrade).
 */
const lastTagBefore = "0010_permit2_settlements";
const permit2 = "0x000000000022d473030f116ddee9f6b43ac78ba3";

const payer = randomAddress();
const token = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";

/** The pre-0011 claim, as the 0010 code's settlements-repo wrote it: no eip2612_permit. */
const oldClaimSql = `
  insert into settlements (chain_id, nonce_contract, asset, payer, nonce, scheme, transfer_method, pay_to, value_atomic, permitted_atomic,
                           valid_after_seconds, valid_before_seconds, authorization_digest, signature, x402_version, network, status, lease_until)
  values ($1, $2, $3, $4, $5, 'exact', 'permit2', $6, 1, 1, 0, 9999999999, $7, '0x00', 2, 'eip155:84532', $8, now() + interval '1 minute')
  on conflict (chain_id, nonce_contract, payer, nonce) do nothing
  returning id`;
function oldClaimValues(status: "claimed" | "confirmed"): unknown[] {
  const claim = newClaim({ payer, asset: token });
  return [claim.chainId, permit2, token, payer, claim.nonce, claim.payTo, claim.authorizationDigest, status];
}

const database = useMigratedDatabase({
  label: "migration_0011",
  lastTagBefore,
  async seed(client) {
    for (const status of ["confirmed", "claimed"] as const) expect((await client.query(oldClaimSql, oldClaimValues(status))).rowCount).toBe(1);
  },
});

describe("migration 0011 on a database with Permit2 rows", () => {
  it("marks every earlier row as carrying no permit, the column NOT NULL", async () => {
    const rows = await withPgClient(database.url, (client) => client.query("select status, eip2612_permit from settlements order by status"));
    expect(rows.rows).toEqual([
      { status: "claimed", eip2612_permit: false },
      { status: "confirmed", eip2612_permit: false },
    ]);
    const column = await withPgClient(database.url, (client) =>
      client.query("select is_nullable, column_default from information_schema.columns where table_name = 'settlements' and column_name = 'eip2612_permit'"),
    );
    expect(column.rows).toEqual([{ is_nullable: "NO", column_default: "false" }]);
  });

  it("creates the lane as a unique index on (chain_id, asset, payer) over unfinished rows carrying a permit", async () => {
    const index = await withPgClient(database.url, (client) => client.query("select indexdef from pg_indexes where indexname = 'settlements_eip2612_permit_lane'"));
    expect(index.rows).toHaveLength(1);
    const definition = String(index.rows[0].indexdef);
    expect(definition).toMatch(/^CREATE UNIQUE INDEX settlements_eip2612_permit_lane ON public\.settlements USING btree \(chain_id, asset, payer\) WHERE/);
    expect(definition).toMatch(/eip2612_permit/);
    for (const status of ["claimed", "signed", "submitted"]) expect(definition).toContain(`'${status}'`);
    for (const status of ["confirmed", "failed"]) expect(definition).not.toContain(`'${status}'`);
  });

  it("leaves the lane free: the unfinished earlier claim holds none, so one claim carrying a permit goes through, a second is refused", async () => {
    const repo = new SettlementsRepository(database.db);
    const permitClaim = () => newClaim({ payer, asset: token, nonceContract: permit2, transferMethod: "permit2", eip2612Permit: true });
    expect(await repo.claim(permitClaim())).toMatchObject({ status: "claimed", eip2612Permit: true });
    await expect(repo.claim(permitClaim())).rejects.toBeInstanceOf(PermitLaneTakenError);
  });

  it("keeps a pre-0011 instance's claim working (it writes no permit flag, so takes no lane)", async () => {
    const inserted = await withPgClient(database.url, (client) => client.query(oldClaimSql, oldClaimValues("claimed")));
    expect(inserted.rowCount).toBe(1);
  });
});
