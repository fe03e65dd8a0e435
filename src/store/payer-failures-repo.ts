import { sql } from "drizzle-orm";
import type { Database } from "./db.js";

/**
 * Payers whose settlement failed on chain with the authorization unused: while their address had
 * code (payer_chain_failures, the cooldown), and whatever their code (payer_failed_calls, one
 * settlement in flight at a time); see schema.ts. One row per (chain, payer) in each, its last
 * failure and how many there were.
 */
export class PayerFailuresRepository {
  constructor(private readonly db: Database) {}

  async record(chainId: number, payer: string): Promise<void> {
    await this.db.execute(sql`
      insert into payer_chain_failures (chain_id, payer) values (${chainId}, ${payer.toLowerCase()})
      on conflict (chain_id, payer) do update set last_failed_at = now(), failures = payer_chain_failures.failures + 1`);
  }

  /** True when the payer's last on-chain failure is less than `windowMs` old. */
  async failedWithin(chainId: number, payer: string, windowMs: number): Promise<boolean> {
    const result = await this.db.execute(sql`
      select 1 from payer_chain_failures
      where chain_id = ${chainId} and payer = ${payer.toLowerCase()} and last_failed_at > now() - make_interval(secs => ${windowMs / 1000})`);
    return result.rows.length > 0;
  }

  async recordFailedCall(chainId: number, payer: string): Promise<void> {
    await this.db.execute(sql`
      insert into payer_failed_calls (chain_id, payer) values (${chainId}, ${payer.toLowerCase()})
      on conflict (chain_id, payer) do update set last_failed_at = now(), failures = payer_failed_calls.failures + 1`);
  }

  /** True when one of the payer's settlement calls failed on chain (authorization unused) less than `windowMs` ago. */
  async failedCallWithin(chainId: number, payer: string, windowMs: number): Promise<boolean> {
    const result = await this.db.execute(sql`
      select 1 from payer_failed_calls
      where chain_id = ${chainId} and payer = ${payer.toLowerCase()} and last_failed_at > now() - make_interval(secs => ${windowMs / 1000})`);
    return result.rows.length > 0;
  }
}
