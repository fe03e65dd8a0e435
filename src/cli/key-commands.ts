import { parseArgs } from "node:util";
import { formatEther, getAddress } from "viem";
import { createChainRegistry } from "../chain/registry.js";
import { createSignerPool } from "../chain/signers.js";
import { systemClock } from "../clock.js";
import { databaseUrlFrom, loadConfig } from "../config.js";
import { ConfigError } from "../errors.js";
import { redactedFirstLine } from "../redact.js";
import { caip2, chainIdOfNetworkArg } from "../protocol/networks.js";
import { ApiKeysRepository, type ApiKeyRole } from "../store/api-keys-repo.js";
import { openDatabase } from "../store/db.js";
import { runMigrations } from "../store/migrate.js";

type Write = (line: string) => void;

/** `keys create|list|revoke`: API keys live in Postgres (DATABASE_URL); a new key is printed once. */
export async function keysCommand(args: string[], env: NodeJS.ProcessEnv, write: Write): Promise<void> {
  const url = databaseUrlFrom(env);
  await runMigrations(url);
  const database = openDatabase(url, { dbPoolMax: 2, dbStatementTimeoutMs: 10_000 });
  try {
    const repo = new ApiKeysRepository(database.db);
    const [action, ...rest] = args;
    if (action === "create") return await createKey(repo, rest, write);
    if (action === "list") {
      for (const row of await repo.list()) {
        const state = row.revokedAt ? `revoked ${row.revokedAt.toISOString()}` : "active";
        write(`${row.id}  ${row.keyPrefix}…  ${row.role.padEnd(6)}  ${state.padEnd(32)}  ${row.name}`);
      }
      return;
    }
    if (action === "revoke") {
      const target = rest[0];
      if (!target) throw new ConfigError("keys revoke <id | key prefix>");
      const revoked = await repo.revoke(target);
      if (revoked === 0) throw new ConfigError(`no active key matches "${target}"`);
      write(`revoked ${revoked} key(s)`);
      return;
    }
    throw new ConfigError("usage: keys create --name NAME [--admin] [--pay-to A,B] [--networks N,M] [--assets A,B] [--rate-limit N] [--daily-gas-budget-wei N] | keys list | keys revoke <id|prefix>");
  } finally {
    await database.close();
  }
}

async function createKey(repo: ApiKeysRepository, args: string[], write: Write): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      name: { type: "string" },
      admin: { type: "boolean", default: false },
      "pay-to": { type: "string" },
      networks: { type: "string" },
      assets: { type: "string" },
      "rate-limit": { type: "string" },
      "daily-gas-budget-wei": { type: "string" },
    },
    strict: true,
  });
  if (!values.name) throw new ConfigError("keys create needs --name");
  const list = (value: string | undefined) => value?.split(",").map((item) => item.trim()).filter(Boolean);
  const addresses = (value: string | undefined, flag: string) =>
    list(value)?.map((address) => {
      try {
        return getAddress(address);
      } catch {
        throw new ConfigError(`--${flag}: "${address}" is not an address`);
      }
    });
  // Stored as CAIP-2 whichever way the operator names them: the policy compares chains, not spellings.
  const networks = (value: string | undefined) => {
    const names = list(value)?.map((network) => caip2(chainIdOfNetworkArg(network, "--networks")));
    return names && [...new Set(names)]; // "base,eip155:8453" is one chain
  };
  const positive = (value: string | undefined, flag: string) => {
    if (value === undefined) return undefined;
    if (!/^[1-9][0-9]{0,30}$/.test(value)) throw new ConfigError(`--${flag} must be a positive integer`);
    return value;
  };
  const role: ApiKeyRole = values.admin ? "admin" : "client";
  const rateLimit = positive(values["rate-limit"], "rate-limit");
  const budget = positive(values["daily-gas-budget-wei"], "daily-gas-budget-wei");
  const { key, row } = await repo.create({
    name: values.name,
    role,
    allowedPayTo: addresses(values["pay-to"], "pay-to"),
    allowedNetworks: networks(values.networks),
    allowedAssets: addresses(values.assets, "assets"),
    rateLimitPerMinute: rateLimit === undefined ? undefined : Number(rateLimit),
    dailyGasBudgetWei: budget === undefined ? undefined : BigInt(budget),
  });
  write(`created ${role} key ${row.id} (${row.name})`);
  write(`key: ${key}`);
  write("Store it now: only its hash is kept, it cannot be shown again.");
}

/** `signers`: each signer's address, nonces and native balance on every configured network. */
export async function signersCommand(env: NodeJS.ProcessEnv, write: Write): Promise<void> {
  const config = loadConfig(env);
  const pool = createSignerPool(config.signerPrivateKeys);
  const chains = createChainRegistry(config.networks, config.limits, { clock: systemClock });
  for (const handle of chains.all()) {
    for (const address of pool.addresses()) {
      const line = await Promise.all([
        handle.publicClient.getTransactionCount({ address, blockTag: "latest" }),
        handle.publicClient.getTransactionCount({ address, blockTag: "pending" }),
        handle.publicClient.getBalance({ address }),
      ]).then(
        ([latest, pending, balance]) => `nonce ${latest} (pending ${pending})  balance ${formatEther(balance)}`,
        (error: unknown) => `unreachable: ${redactedFirstLine(error)}`,
      );
      write(`${handle.config.network}  ${address}  ${line}`);
    }
  }
}
