import { describe, expect, inject, it } from "vitest";
import { createTestDatabase, withPgClient } from "../../helpers/database.js";

const userRelationsSql = `select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'`;

function databaseExists(name: string): Promise<boolean> {
  return withPgClient(inject("pgAdminUrl"), async (c) => (await c.query("select 1 from pg_database where datname = $1", [name])).rowCount === 1);
}

describe("createTestDatabase", () => {
  it("gives each call its own empty, connectable database", async () => {
    const [first, second] = await Promise.all([createTestDatabase("helpers"), createTestDatabase("helpers")]);
    try {
      expect(first.name).not.toBe(second.name);
      expect(first.url).not.toBe(second.url);
      for (const db of [first, second]) {
        expect(db.name).toMatch(/^x402_t_helpers_[0-9a-f]{10}$/);
        const seen = await withPgClient(db.url, async (c) => ({
          database: (await c.query("select current_database() as d")).rows[0].d,
          relations: (await c.query(userRelationsSql)).rows[0].n,
        }));
        expect(seen).toEqual({ database: db.name, relations: 0 });
      }
      // What one test writes, the other does not see.
      await withPgClient(first.url, (c) => c.query("create table only_in_first (id int)"));
      expect(await withPgClient(second.url, async (c) => (await c.query(userRelationsSql)).rows[0].n)).toBe(0);
    } finally {
      await Promise.all([first.drop(), second.drop()]);
    }
  });

  it("drop() removes the database, even with a connection open, and can be called twice", async () => {
    const db = await createTestDatabase();
    expect(await databaseExists(db.name)).toBe(true);
    await withPgClient(db.url, async () => {
      await db.drop(); // while this connection is open
    });
    expect(await databaseExists(db.name)).toBe(false);
    await expect(withPgClient(db.url, (c) => c.query("select 1"))).rejects.toMatchObject({ code: "3D000" });
    await db.drop();
  });

  it("turns any label into a valid database name", async () => {
    const db = await createTestDatabase("Settlement Store / Retry-Path: a very long label that goes on and on");
    try {
      expect(db.name).toMatch(/^x402_t_settlement_store_retry_path_a_very_long_l[a-z_]*_[0-9a-f]{10}$/);
      expect(db.name.length).toBeLessThanOrEqual(63);
    } finally {
      await db.drop();
    }
  });
});
