import { and, desc, eq, gte, sql, type SQL } from "drizzle-orm";
import type { Database } from "./db.js";
import { settlements, type SettlementStatus } from "./schema.js";
import { statusIn, unfinishedStatuses } from "./settlement-states.js";

/** Read-only queries for the operator: settlement history (keyset pages) and dashboard figures. */

export interface HistoryFilter {
  /** Lowercased here: rows store lowercase addresses. */
  payer?: string;
  payTo?: string;
  status?: SettlementStatus;
  since?: Date;
}

/**
 * A position in the (created_at desc, id desc) order. `createdAt` is Postgres' own text for the
 * timestamp with all six fractional digits: a JS Date keeps milliseconds only, and a cursor
 * rounded to the millisecond would skip or repeat rows created within the same millisecond.
 */
export interface HistoryPosition {
  createdAt: string;
  id: string;
}

export interface HistoryRow {
  id: string;
  status: SettlementStatus;
  network: string;
  chainId: number;
  asset: string;
  payer: string;
  payTo: string;
  valueAtomic: string;
  scheme: string;
  transferMethod: string;
  permittedAtomic: string;
  txHash: string | null;
  settledTxHash: string | null;
  errorReason: string | null;
  createdAt: Date;
  updatedAt: Date;
  gasUsed: number | null;
  gasCostWei: string | null;
}

export interface HistoryPage {
  rows: HistoryRow[];
  /** Where the next page starts; undefined on the last page. */
  next: HistoryPosition | undefined;
}

export interface StatusCounts {
  /** Rows created in the window, by status. */
  recent: Partial<Record<SettlementStatus, number>>;
  /** Every row not yet final (claimed, signed, submitted), whatever its age. */
  unfinished: Partial<Record<SettlementStatus, number>>;
}

/** UTC, microseconds, parseable back by Postgres exactly: 2025-01-31T12:34:56.123456Z. */
const exactCreatedAt = sql<string>`to_char(${settlements.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const historyColumns = {
  id: settlements.id,
  status: settlements.status,
  network: settlements.network,
  chainId: settlements.chainId,
  asset: settlements.asset,
  payer: settlements.payer,
  payTo: settlements.payTo,
  valueAtomic: settlements.valueAtomic,
  scheme: settlements.scheme,
  transferMethod: settlements.transferMethod,
  permittedAtomic: settlements.permittedAtomic,
  txHash: settlements.txHash,
  settledTxHash: settlements.settledTxHash,
  errorReason: settlements.errorReason,
  createdAt: settlements.createdAt,
  updatedAt: settlements.updatedAt,
  gasUsed: settlements.gasUsed,
  gasCostWei: settlements.gasCostWei,
};

export class HistoryRepository {
  constructor(private readonly db: Database) {}

  /** Newest first; `after` continues a previous page. Reads limit + 1 rows to know whether more follow. */
  async list(filter: HistoryFilter, limit: number, after?: HistoryPosition): Promise<HistoryPage> {
    const conditions: SQL[] = [];
    if (filter.payer !== undefined) conditions.push(eq(settlements.payer, filter.payer.toLowerCase()));
    if (filter.payTo !== undefined) conditions.push(eq(settlements.payTo, filter.payTo.toLowerCase()));
    if (filter.status !== undefined) conditions.push(eq(settlements.status, filter.status));
    if (filter.since !== undefined) conditions.push(gte(settlements.createdAt, filter.since));
    if (after !== undefined) {
      conditions.push(sql`(${settlements.createdAt}, ${settlements.id}) < (${after.createdAt}::timestamptz, ${after.id}::uuid)`);
    }
    const found = await this.db
      .select({ ...historyColumns, cursorCreatedAt: exactCreatedAt })
      .from(settlements)
      .where(conditions.length > 0 ? and(...conditions) : undefined)
      .orderBy(desc(settlements.createdAt), desc(settlements.id))
      .limit(limit + 1);
    const more = found.length > limit;
    const page = more ? found.slice(0, limit) : found;
    const last = page.at(-1);
    return {
      rows: page.map(({ cursorCreatedAt: _omit, ...row }) => row),
      next: more && last ? { createdAt: last.cursorCreatedAt, id: last.id } : undefined,
    };
  }

  async findById(id: string): Promise<HistoryRow | undefined> {
    const [row] = await this.db.select(historyColumns).from(settlements).where(eq(settlements.id, id)).limit(1);
    return row;
  }

  /**
   * Status counts for the dashboard: rows created within the last `windowHours` (for the success
   * rate), and every unfinished row (served by the partial index settlements_unfinished).
   */
  async statusCounts(windowHours: number): Promise<StatusCounts> {
    const [recent, unfinished] = await Promise.all([
      this.db.execute<{ status: SettlementStatus; count: string }>(
        sql`select status, count(*) as count from settlements where created_at >= now() - make_interval(hours => ${windowHours}) group by status`,
      ),
      this.db.execute<{ status: SettlementStatus; count: string }>(
        sql`select status, count(*) as count from settlements where ${statusIn(settlements.status, unfinishedStatuses)} group by status`,
      ),
    ]);
    const tally = (rows: Array<{ status: SettlementStatus; count: string }>) => Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]));
    return { recent: tally(recent.rows), unfinished: tally(unfinished.rows) };
  }
}
