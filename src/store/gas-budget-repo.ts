import { sql } from "drizzle-orm";
import type { Database } from "./db.js";

/** Today in UTC, as Postgres sees it: one clock for every instance. */
const utcToday = sql`(now() at time zone 'utc')::date`;

export interface GasReservation {
  settlementId: string;
  /** The settlement row's attempt: a re-claimed row reserves again, its earlier attempt keeps its cost. */
  attempt: number;
  apiKeyId: string;
  dailyBudgetWei: bigint;
  /** The most this attempt can cost: gas limit × fee cap. */
  worstCaseWei: bigint;
}

/**
 * A key's daily gas budget, reserved before anything is signed and settled with the real cost
 * afterwards (see gasBudgetDays in schema.ts). Concurrent settles of one key cannot overspend it:
 * the check and the reservation are one statement on the key's day row.
 */
export class GasBudgetRepository {
  constructor(private readonly db: Database) {}

  /** True when the reservation fits in what is left of today's budget (and is now held). */
  async reserve(reservation: GasReservation): Promise<boolean> {
    const { settlementId, attempt, apiKeyId, dailyBudgetWei, worstCaseWei } = reservation;
    const budget = dailyBudgetWei.toString();
    const amount = worstCaseWei.toString();
    const result = await this.db.execute(sql`
      with day_row as (
        insert into gas_budget_days as d (api_key_id, day, reserved_wei, spent_wei)
        select ${apiKeyId}::uuid, ${utcToday}, ${amount}::numeric, 0
        where ${amount}::numeric <= ${budget}::numeric
        on conflict (api_key_id, day) do update set reserved_wei = d.reserved_wei + excluded.reserved_wei
          where d.reserved_wei + d.spent_wei + excluded.reserved_wei <= ${budget}::numeric
        returning d.day
      )
      insert into gas_reservations (settlement_id, attempt, api_key_id, day, reserved_wei)
      select ${settlementId}::uuid, ${attempt}, ${apiKeyId}::uuid, day_row.day, ${amount}::numeric from day_row
      on conflict (settlement_id, attempt) do nothing
      returning settlement_id`);
    return result.rows.length === 1;
  }

  /**
   * Replaces an attempt's reservation with what it really cost (0 when nothing was sent), once:
   * a second call, or one for an attempt that reserved nothing, changes nothing.
   */
  async settle(settlementId: string, attempt: number, spentWei: bigint): Promise<void> {
    await this.db.execute(sql`
      with taken as (
        update gas_reservations set settled = true
        where settlement_id = ${settlementId}::uuid and attempt = ${attempt} and not settled
        returning api_key_id, day, reserved_wei
      )
      update gas_budget_days d
      set reserved_wei = d.reserved_wei - taken.reserved_wei, spent_wei = d.spent_wei + ${spentWei.toString()}::numeric
      from taken where d.api_key_id = taken.api_key_id and d.day = taken.day`);
  }

  /** What the key has spent and holds reserved today (UTC). */
  async todayWei(apiKeyId: string): Promise<{ spentWei: bigint; reservedWei: bigint }> {
    const result = await this.db.execute<{ spent_wei: string; reserved_wei: string }>(
      sql`select spent_wei, reserved_wei from gas_budget_days where api_key_id = ${apiKeyId}::uuid and day = ${utcToday}`,
    );
    const row = result.rows[0];
    return { spentWei: BigInt(row?.spent_wei ?? "0"), reservedWei: BigInt(row?.reserved_wei ?? "0") };
  }
}
