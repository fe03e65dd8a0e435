import { describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { settlements } from "../../../src/store/schema.js";
import { isReclaimable, reclaimableWhere, settlementStatuses } from "../../../src/store/settlement-states.js";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { useMigratedDatabase } from "../../helpers/database.js";
import { newClaim } from "../../helpers/settlement-rows.js";

/** The reclaim rule is written once for TypeScript and once for SQL: both must say the same of every row. */

const store = useMigratedDatabase("settlement_states");

describe("the reclaim rule", () => {
  it("agrees in TypeScript (isReclaimable) and SQL (reclaimableWhere) for every status, broadcast and authorization state", async () => {
    const repo = new SettlementsRepository(store.handle.db);
    const cases = settlementStatuses.flatMap((status) => [null, new Date()].flatMap((broadcastAt) => [false, true].map((authorizationUnused) => ({ status, broadcastAt, authorizationUnused }))));
    for (const fields of cases) {
      const row = (await repo.claim(newClaim()))!;
      await store.handle.db.update(settlements).set(fields).where(eq(settlements.id, row.id));
      const [read] = await store.handle.db.select({ row: settlements, reclaimable: reclaimableWhere(settlements) }).from(settlements).where(eq(settlements.id, row.id));
      expect({ ...fields, sql: read!.reclaimable }).toEqual({ ...fields, sql: isReclaimable(read!.row) });
    }
    expect(cases).toHaveLength(20);
  });
});
