import { ConfigError } from "../errors.js";
import { DenylistError, loadDenylistFileSync } from "./denylist.js";
import type { OracleFailureMode, ScreeningConfig } from "./screening.js";

type Env = Readonly<Record<string, string | undefined>>;

const failureModes: readonly OracleFailureMode[] = ["closed", "open"];

/**
 * SANCTIONS_DENYLIST_FILE (read now: a bad file stops the start with one line naming the variable)
 * and SANCTIONS_ORACLE_FAILURE. The oracles themselves are per network (config.ts).
 */
export function loadScreeningConfig(env: Env): ScreeningConfig {
  const mode = env.SANCTIONS_ORACLE_FAILURE?.trim() || "closed";
  if (!failureModes.includes(mode as OracleFailureMode)) throw new ConfigError(`SANCTIONS_ORACLE_FAILURE must be "closed" or "open", got "${env.SANCTIONS_ORACLE_FAILURE}"`);
  const path = env.SANCTIONS_DENYLIST_FILE?.trim();
  if (!path) return { oracleFailure: mode as OracleFailureMode };
  try {
    return { oracleFailure: mode as OracleFailureMode, denylist: { path, loaded: loadDenylistFileSync(path) } };
  } catch (error) {
    if (error instanceof DenylistError) throw new ConfigError(`SANCTIONS_DENYLIST_FILE (${path}): ${error.message}`);
    throw error;
  }
}
