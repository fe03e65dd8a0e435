import { and, eq, sql, type SQL } from "drizzle-orm";
import type { AcceptedRequirements, BazaarEntry } from "../bazaar/extract.js";
import type { Database } from "./db.js";
import { bazaarResources, type BazaarResourceRow } from "./schema.js";

/** What a catalogue write did: a new entry, a known one refreshed, or none (the catalogue is full). */
export type CatalogueWrite = { kind: "catalogued"; evicted: number } | { kind: "refreshed" } | { kind: "full" };

export interface CatalogueBounds {
  entriesMax: number;
  entriesPerPayToMax: number;
  ttlMs: number;
  acceptsPerEntryMax: number;
  purgeBatchMax: number;
}

export interface DiscoveryFilter {
  type?: string;
  /** Compared lowercased: rows store lowercase addresses. */
  payTo?: string;
  scheme?: string;
  network?: string;
  /** Every key must be present on the entry. */
  extensions?: string[];
}

/**
 * The Bazaar catalogue (schema.ts bazaarResources). Writes take a per-payTo advisory lock, so the
 * per-payTo cap holds across instances; the global cap is checked in the same transaction (instances
 * writing for different payTos at the same moment may pass it by one each). Reads never show an
 * entry older than the TTL.
 */
export class BazaarRepository {
  constructor(private readonly db: Database) {}

  async write(entry: BazaarEntry, bounds: CatalogueBounds): Promise<CatalogueWrite> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`bazaar:${entry.payTo}`}, 0))`);
      // Expired entries go on writes (bounded per write): reads already leave them out.
      await tx.execute(sql`
        delete from bazaar_resources where id in (
          select id from bazaar_resources where last_updated <= ${expiredBefore(bounds.ttlMs)} order by last_updated limit ${bounds.purgeBatchMax})`);
      const key = and(
        eq(bazaarResources.payTo, entry.payTo),
        eq(bazaarResources.resource, entry.resource),
        eq(bazaarResources.type, entry.type),
        eq(bazaarResources.action, entry.action),
      );
      const [existing] = await tx.select({ id: bazaarResources.id, accepts: bazaarResources.accepts }).from(bazaarResources).where(key).for("update");
      const described = describedBy(entry);
      if (existing) {
        const accepts = mergeAccepts(existing.accepts as AcceptedRequirements[], entry.accept, bounds.acceptsPerEntryMax);
        await tx.update(bazaarResources).set({ ...described, accepts, lastUpdated: sql`now()` }).where(eq(bazaarResources.id, existing.id));
        return { kind: "refreshed" };
      }
      const counted = await tx.execute<{ entries: string }>(sql`select count(*) as entries from bazaar_resources`);
      if (Number(counted.rows[0]!.entries) >= bounds.entriesMax) return { kind: "full" };
      // Room for one more of this payTo: its least recently paid entries beyond the cap go.
      const evicted = await tx.execute(sql`
        delete from bazaar_resources where id in (
          select id from bazaar_resources where pay_to = ${entry.payTo}
          order by last_updated desc, id desc offset ${bounds.entriesPerPayToMax - 1})`);
      await tx.insert(bazaarResources).values({ ...described, payTo: entry.payTo, resource: entry.resource, type: entry.type, action: entry.action, accepts: [entry.accept] });
      return { kind: "catalogued", evicted: evicted.rowCount ?? 0 };
    });
  }

  /** A page of live entries, most recently paid first, and how many match in all. */
  async list(filter: DiscoveryFilter, page: { limit: number; offset: number }, ttlMs: number): Promise<{ rows: BazaarResourceRow[]; total: number }> {
    const where = and(...conditions(filter, ttlMs));
    const [rows, counted] = await Promise.all([
      this.db.select().from(bazaarResources).where(where).orderBy(sql`${bazaarResources.lastUpdated} desc, ${bazaarResources.id} desc`).limit(page.limit).offset(page.offset),
      this.db.select({ total: sql<string>`count(*)` }).from(bazaarResources).where(where),
    ]);
    return { rows, total: Number(counted[0]!.total) };
  }

  /**
   * Live entries containing any of `words` (lowercase) in their search text, most words first, then
   * most recently paid; `more` when entries follow this page.
   */
  async search(words: string[], filter: DiscoveryFilter, page: { limit: number; offset: number }, ttlMs: number): Promise<{ rows: BazaarResourceRow[]; more: boolean }> {
    const score = sql.join(
      words.map((word) => sql`(strpos(${bazaarResources.searchText}, ${word}) > 0)::int`),
      sql` + `,
    );
    const rows = await this.db
      .select()
      .from(bazaarResources)
      .where(and(...conditions(filter, ttlMs), sql`(${score}) > 0`))
      .orderBy(sql`(${score}) desc, ${bazaarResources.lastUpdated} desc, ${bazaarResources.id} desc`)
      .limit(page.limit + 1)
      .offset(page.offset);
    return { rows: rows.slice(0, page.limit), more: rows.length > page.limit };
  }
}

/** The columns a payment's description sets, on insert and on every refresh (the latest payment's word counts). */
function describedBy(entry: BazaarEntry) {
  return {
    x402Version: entry.x402Version,
    description: entry.description ?? null,
    mimeType: entry.mimeType ?? null,
    serviceName: entry.serviceName ?? null,
    tags: entry.tags ?? null,
    iconUrl: entry.iconUrl ?? null,
    extensions: entry.extensions,
    extensionKeys: entry.extensionKeys,
    searchText: entry.searchText,
    bytes: entry.bytes,
  };
}

/** This payment's option first, replacing the one for the same scheme, network and asset; at most `max`. */
export function mergeAccepts(existing: AcceptedRequirements[], latest: AcceptedRequirements, max: number): AcceptedRequirements[] {
  const sameOption = (option: AcceptedRequirements) =>
    option.scheme === latest.scheme && option.network === latest.network && option.asset.toLowerCase() === latest.asset.toLowerCase();
  return [latest, ...existing.filter((option) => !sameOption(option))].slice(0, max);
}

function expiredBefore(ttlMs: number): SQL {
  return sql`now() - make_interval(secs => ${ttlMs / 1000})`;
}

function conditions(filter: DiscoveryFilter, ttlMs: number): SQL[] {
  const where: SQL[] = [sql`${bazaarResources.lastUpdated} > ${expiredBefore(ttlMs)}`];
  if (filter.type !== undefined) where.push(eq(bazaarResources.type, filter.type));
  if (filter.payTo !== undefined) where.push(eq(bazaarResources.payTo, filter.payTo.toLowerCase()));
  if (filter.scheme !== undefined) where.push(sql`${bazaarResources.accepts} @> ${JSON.stringify([{ scheme: filter.scheme }])}::jsonb`);
  if (filter.network !== undefined) where.push(sql`${bazaarResources.accepts} @> ${JSON.stringify([{ network: filter.network }])}::jsonb`);
  if (filter.extensions !== undefined && filter.extensions.length > 0) {
    where.push(sql`${bazaarResources.extensionKeys} @> (select array_agg(key) from jsonb_array_elements_text(${JSON.stringify(filter.extensions)}::jsonb) as key)`);
  }
  return where;
}
