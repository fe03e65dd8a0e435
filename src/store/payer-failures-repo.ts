import { sql, type SQL } from "drizzle-orm";
import type { Database } from "./db.js";

/**
 * Payers whose settlement call failed on chain although it simulated fine (see schema.ts): while
 * their address had code (payer_chain_failures: PAYER_CODE_COOLDOWN_MS refuses them), and whatever
 * their code (payer_failed_calls: PAYER_ONE_AT_A_TIME_MS gives them one settlement in flight at a
 * time, read inside SettlementsRepository.reserveFunds). One row per (chain, payer) in each, its
 * last failure and how many there were.
 */
type FailureTable = "payer_chain_failures" | "payer_failed_calls";

/**
 * SQL that is true when `table` holds a failure of (chain, payer) less than `windowMs` old (Postgres'
 * clock): for codeFailureWithin, and inside SettlementsRepository.reserveFunds' locked statement.
 */
export function recentPayerFailure(table: FailureTable, chainId: number, payer: string, windowMs: number): SQL {
  return sql`exists (select 1 from ${sql.identifier(table)}
    where chain_id = ${chainId} and payer = ${payer.toLowerCase()} and last_failed_at > now() - make_interval(secs => ${windowMs / 1000}))`;
}

export class PayerFailuresRepository {
  constructor(private readonly db: Database) {}

  /** Its call failed while its address had code: cooled down. */
  recordCodeFailure(chainId: number, payer: string): Promise<void> {
    return this.recordIn("payer_chain_failures", chainId, payer);
  }

  /** Its own call failed (any payer): one settlement at a time for a while. */
  recordFailedCall(chainId: number, payer: string): Promise<void> {
    return this.recordIn("payer_failed_calls", chainId, payer);
  }

  /** True when the payer's last on-chain failure while it had code is less than `windowMs` old. */
  async codeFailureWithin(chainId: number, payer: string, windowMs: number): Promise<boolean> {
    const result = await this.db.execute<{ recent: boolean }>(sql`select ${recentPayerFailure("payer_chain_failures", chainId, payer, windowMs)} as recent`);
    return result.rows[0]?.recent === true;
  }

  private async recordIn(table: FailureTable, chainId: number, payer: string): Promise<void> {
    const name = sql.identifier(table);
    await this.db.execute(sql`
      insert into ${name} (chain_id, payer) values (${chainId}, ${payer.toLowerCase()})
      on conflict (chain_id, payer) do update set last_failed_at = now(), failures = ${name}.failures + 1`);
  }
}
