import { parseArgs } from "node:util";
import { formatEther, getAddress } from "viem";
import { createChainRegistry } from "../chain/registry.js";
import { createSignerPool } from "../chain/signers.js";
import { systemClock } from "../clock.js";
import { databaseUrlFrom, loadConfig } from "../config.js";
import { redactedFirstLine } from "../redact.js";
import { caip2, chainIdOfNetworkArg } from "../protocol/networks.js";
import { apiKeyPrefixLength, ApiKeysRepository, generateApiKey, type ApiKeyMatch, type ApiKeyRole } from "../store/api-keys-repo.js";
import type { ApiKeyRow } from "../store/schema.js";
import { openDatabase } from "../store/db.js";
import { runMigrations } from "../store/migrate.js";
import { asUsage, CliError, exitCodes, NotFoundError, UsageError, wantsHelp } from "./cli-error.js";

type Write = (line: string) => void;

export const keysUsage = `x402-facilitator keys <action>        API keys in Postgres (needs DATABASE_URL)

  keys create --name NAME [--admin] [--pay-to A,B] [--networks N,M] [--assets A,B]
              [--rate-limit PER_MINUTE] [--daily-gas-budget-wei WEI]
              prints the new key once (only its SHA-256 is stored); the server asks for keys
              only with AUTH=api-keys
  keys list   one line per key: id, name, prefix, role, pay-to, networks, assets, rate limit,
              gas budget, created, revoked
  keys revoke <id | key | key prefix>
              the key's id, the whole key, or the start of it (as keys list prints it, with or
              without the "…"); a prefix that fits several active keys is refused, listing them
  keys help   this text

Exit codes: 0 done, 1 no key matches, 2 usage or configuration error.`;

/** `keys create|list|revoke|help`: API keys live in Postgres (DATABASE_URL); a new key is printed once. */
export async function keysCommand(args: string[], env: NodeJS.ProcessEnv, write: Write, warn: Write = write): Promise<void> {
  const [action, ...rest] = args;
  if (action === undefined) throw new UsageError("keys needs an action: create, list or revoke (see x402-facilitator keys help)");
  if (wantsHelp(args)) {
    write(keysUsage);
    return;
  }
  if (action !== "create" && action !== "list" && action !== "revoke") {
    throw new UsageError(`keys: unknown action "${action}": create, list or revoke (see x402-facilitator keys help)`);
  }
  const target = rest[0];
  if (action === "revoke" && (target === undefined || rest.length > 1)) throw new UsageError("usage: keys revoke <id | key | key prefix>");
  const url = databaseUrlFrom(env);
  await runMigrations(url);
  const database = openDatabase(url, { dbPoolMax: 2, dbStatementTimeoutMs: 10_000 });
  try {
    const repo = new ApiKeysRepository(database.db);
    if (action === "create") return await createKey(repo, rest, env, write, warn);
    if (action === "list") return listKeys(await repo.list(), write);
    const revoked = await revokeKey(repo, target!);
    write(`revoked ${revoked.id} (${printable(revoked.name)}, ${revoked.keyPrefix}…)`);
  } finally {
    await database.close();
  }
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const keyTextPrefix = "x402_";

/** A revoke target as an id, a whole key (matched by hash) or a prefix; never echoes more of a key than listings show. */
export function revokeMatch(target: string): ApiKeyMatch {
  const text = target.trim();
  if (uuidPattern.test(text)) return { id: text.toLowerCase() };
  const prefix = text.replace(/(…|\.\.\.)$/, "");
  if (!prefix.startsWith(keyTextPrefix) || prefix.length === keyTextPrefix.length) {
    throw new UsageError(`keys revoke: "${shown(text)}" is neither a key id (a UUID) nor a key or the start of one (x402_…)`);
  }
  if (prefix !== text || prefix.length <= apiKeyPrefixLength) {
    if (prefix.length > apiKeyPrefixLength) {
      throw new UsageError(`keys revoke: only the first ${apiKeyPrefixLength} characters of a key are stored: give at most those (as keys list prints them), the whole key or the id`);
    }
    return { keyPrefix: prefix };
  }
  return { key: text };
}

async function revokeKey(repo: ApiKeysRepository, target: string): Promise<ApiKeyRow> {
  const match = revokeMatch(target);
  const what = "id" in match ? `id ${match.id}` : "key" in match ? `key ${shown(match.key)}` : `prefix "${match.keyPrefix}"`;
  const active = await repo.findMatching(match, 50, { activeOnly: true });
  if (active.length > 1) {
    const candidates = active.map((row) => `${row.id} (${printable(row.name)})`).join(", ");
    throw new UsageError(`keys revoke: ${what} fits ${active.length} active keys: ${candidates}; give the id or more of the key`);
  }
  if (active.length === 0) {
    const [revoked] = await repo.findMatching(match, 1);
    if (revoked?.revokedAt) throw new NotFoundError(`no active key matches ${what}: ${revoked.id} (${printable(revoked.name)}) was revoked at ${isoSeconds(revoked.revokedAt)}`);
    if ("key" in match && match.key.length !== fullKeyLength) {
      throw new NotFoundError(`no key matches ${what}; only the first ${apiKeyPrefixLength} characters of a key are stored: give at most those, the whole key or the id`);
    }
    throw new NotFoundError(`no key matches ${what}`);
  }
  const revoked = await repo.revokeById(active[0]!.id);
  if (!revoked) throw new NotFoundError(`no active key matches ${what}: it was revoked meanwhile`);
  return revoked;
}

const fullKeyLength = generateApiKey().length;

/** At most the part of a key a listing shows: a key pasted by mistake is not echoed to a terminal or a log. */
function shown(text: string): string {
  return text.length > apiKeyPrefixLength ? `${printable(text.slice(0, apiKeyPrefixLength))}…` : printable(text);
}

/** Control characters in a name would garble the terminal (or forge lines): shown as "?". */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

const isoSeconds = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

/** `keys list`: a header and aligned columns, newest key first. */
export function listKeys(rows: readonly ApiKeyRow[], write: Write): void {
  if (rows.length === 0) {
    write("no API keys (keys create --name NAME makes one)");
    return;
  }
  const any = (values: string[] | null, format: (value: string) => string = (value) => value) =>
    values === null ? "any" : values.length === 0 ? "none" : values.map(format).join(",");
  const address = (value: string) => {
    try {
      return getAddress(value);
    } catch {
      return value;
    }
  };
  const table = [
    ["id", "name", "prefix", "role", "pay-to", "networks", "assets", "rate limit", "gas budget", "created", "revoked"],
    ...rows.map((row) => [
      row.id,
      printable(row.name),
      `${row.keyPrefix}…`,
      row.role,
      any(row.allowedPayTo, address),
      any(row.allowedNetworks),
      any(row.allowedAssets, address),
      row.rateLimitPerMinute === null ? "default" : `${row.rateLimitPerMinute}/min`,
      row.dailyGasBudgetWei === null ? "unlimited" : `${formatEther(BigInt(row.dailyGasBudgetWei))} ETH/day`,
      isoSeconds(row.createdAt),
      row.revokedAt === null ? "-" : isoSeconds(row.revokedAt),
    ]),
  ];
  const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
  for (const line of table) write(line.map((cell, column) => (column === line.length - 1 ? cell : cell.padEnd(widths[column]!))).join("  "));
}

async function createKey(repo: ApiKeysRepository, args: string[], env: NodeJS.ProcessEnv, write: Write, warn: Write): Promise<void> {
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
  if (!values.name) throw new UsageError("keys create needs --name (see x402-facilitator keys help)");
  const list = (value: string | undefined) => value?.split(",").map((item) => item.trim()).filter(Boolean);
  const addresses = (value: string | undefined, flag: string) =>
    list(value)?.map((address) => {
      try {
        return getAddress(address);
      } catch {
        throw new UsageError(`--${flag}: "${address}" is not an address`);
      }
    });
  // Stored as CAIP-2 whichever way the operator names them: the policy compares chains, not spellings.
  const networks = (value: string | undefined) => {
    const names = list(value)?.map((network) => caip2(asUsage(() => chainIdOfNetworkArg(network, "--networks"))));
    return names && [...new Set(names)]; // "base,eip155:8453" is one chain
  };
  const positive = (value: string | undefined, flag: string) => {
    if (value === undefined) return undefined;
    if (!/^[1-9][0-9]{0,30}$/.test(value)) throw new UsageError(`--${flag} must be a positive integer`);
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
  const auth = env.AUTH?.trim();
  if (auth === undefined || auth === "" || auth === "off") {
    warn(`warning: AUTH is ${auth ? `"${auth}"` : "unset"} (off): the server does not ask for this key until it runs with AUTH=api-keys`);
  }
}


/**
 * `signers`: each signer's address, nonces and native balance on every configured network. Every
 * line that can be read is printed; when an RPC did not answer, the command then fails (exit 1)
 * naming the networks, so a script or a cron job notices.
 */
export async function signersCommand(env: NodeJS.ProcessEnv, write: Write, args: readonly string[] = []): Promise<void> {
  if (wantsHelp(args)) {
    write(signersUsage);
    return;
  }
  if (args.length > 0) throw new UsageError(`signers takes no arguments (see x402-facilitator signers --help)`);
  const config = loadConfig(env);
  const pool = createSignerPool(config.signerPrivateKeys, config.limits);
  const chains = createChainRegistry(config.networks, config.limits, { clock: systemClock });
  const unreachable = new Set<string>();
  for (const handle of chains.all()) {
    for (const address of pool.addresses()) {
      const line = await Promise.all([
        handle.publicClient.getTransactionCount({ address, blockTag: "latest" }),
        handle.publicClient.getTransactionCount({ address, blockTag: "pending" }),
        handle.publicClient.getBalance({ address }),
      ]).then(
        ([latest, pending, balance]) => `nonce ${latest} (pending ${pending})  balance ${formatEther(balance)} ETH`,
        (error: unknown) => {
          unreachable.add(handle.config.network);
          return `unreachable: ${redactedFirstLine(error)}`;
        },
      );
      write(`${handle.config.network}  ${address}  ${line}`);
    }
  }
  if (unreachable.size > 0) throw new CliError(`signers: no answer from the RPC of ${[...unreachable].join(", ")}`, exitCodes.failed);
}

export const signersUsage = `x402-facilitator signers

  Prints, per configured network and signer key: the address, its nonce (latest and pending) and
  its balance in ETH (the chain's native unit). Needs the serve configuration (NETWORKS, RPC URLs,
  SIGNER_PRIVATE_KEYS).

Exit codes: 0 every network answered, 1 an RPC did not answer (its lines say "unreachable"; the
others are printed), 2 configuration error.`;
