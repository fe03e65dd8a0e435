import { describe, expect, it } from "vitest";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { withPgClient } from "../../helpers/database.js";
import { useMigratedDatabase } from "../../helpers/migrations.js";
import { newClaim } from "../../helpers/settlement-rows.js";

/**
 * 0010 re-keys settlements on (chain, nonce_contract, payer, nonce). A database at 0009 holding an
 * EIP-3009 row as the code before 0010 wrote it: after 0010 the row keeps its uniqueness (a replay of
 * the same authorization is refused) and has nonce_contract and permitted_atomic filled.
 */
const lastTagBefore = "0009_bazaar_resources";

const old = newClaim({ valueAtomic: 10_000n });

/** The pre-0010 claim, as main's settlements-repo wrote it: keyed on (chain, asset, payer, nonce), no nonce_contract. */
const oldClaimSql = `
  insert into settlements (chain_id, asset, payer, nonce, pay_to, value_atomic, valid_after_seconds, valid_before_seconds,
                           authorization_digest, signature, x402_version, network, status)
  values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'confirmed')
  on conflict (chain_id, asset, payer, nonce) do nothing
  returning id`;
const oldClaimValues = [
  old.chainId, old.asset, old.payer, old.nonce, old.payTo, old.valueAtomic.toString(), old.validAfterSeconds.toString(),
  old.validBeforeSeconds.toString(), old.authorizationDigest, old.signature, old.x402Version, old.network,
];

const database = useMigratedDatabase({
  label: "migration_0010",
  lastTagBefore,
  async seed(client) {
    const inserted = await client.query(oldClaimSql, oldClaimValues);
    expect(inserted.rowCount).toBe(1);
  },
});

describe("migration 0010 on a database with EIP-3009 rows", () => {
  it("fills nonce_contract with the token and permitted_atomic with the value; scheme exact, method eip3009", async () => {
    const rows = await withPgClient(database.url, (client) =>
      client.query("select nonce_contract, asset, permitted_atomic, value_atomic, scheme, transfer_method from settlements"),
    );
    expect(rows.rows).toEqual([
      { nonce_contract: old.asset, asset: old.asset, permitted_atomic: "10000", value_atomic: "10000", scheme: "exact", transfer_method: "eip3009" },
    ]);
  });

  it("leaves no column the code reads as NOT NULL nullable", async () => {
    const columns = await withPgClient(database.url, (client) =>
      client.query(
        "select column_name, is_nullable from information_schema.columns where table_name = 'settlements' and column_name = any($1) order by column_name",
        [["nonce_contract", "permitted_atomic", "scheme", "transfer_method"]],
      ),
    );
    expect(columns.rows).toEqual([
      { column_name: "nonce_contract", is_nullable: "NO" },
      { column_name: "permitted_atomic", is_nullable: "NO" },
      { column_name: "scheme", is_nullable: "NO" },
      { column_name: "transfer_method", is_nullable: "NO" },
    ]);
  });

  it("refuses a replay of the same (chain, token, payer, nonce): the new code's claim gets no row", async () => {
    const repo = new SettlementsRepository(database.db);
    expect(await repo.isClaimed({ chainId: old.chainId, nonceContract: old.asset, payer: old.payer, nonce: old.nonce })).toBe(true);
    expect(await repo.claim({ ...old, nonceContract: old.asset, scheme: "exact", transferMethod: "eip3009", authorizationDigest: `0x${"ab".repeat(32)}` })).toBeUndefined();
    // The key itself, not just the claim's ON CONFLICT: a plain insert of the same key is a unique violation.
    const duplicate = withPgClient(database.url, (client) =>
      client.query(
        `insert into settlements (chain_id, nonce_contract, asset, payer, nonce, pay_to, value_atomic, permitted_atomic, valid_after_seconds,
                                  valid_before_seconds, authorization_digest, signature, x402_version, network, status)
         values ($1, $2, $2, $3, $4, $5, 1, 1, 0, 1, '0x01', '0x00', 2, 'eip155:84532', 'claimed')`,
        [old.chainId, old.asset, old.payer, old.nonce, old.payTo],
      ),
    );
    await expect(duplicate).rejects.toMatchObject({ code: "23505" });
  });

  it("breaks a pre-0010 instance's claim (its ON CONFLICT key is gone): why the README says stop every instance first", async () => {
    const oldInstanceClaim = withPgClient(database.url, (client) => client.query(oldClaimSql, oldClaimValues));
    await expect(oldInstanceClaim).rejects.toMatchObject({ code: "42P10" });
  });
});
