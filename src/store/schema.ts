import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  date,
  index,
  integer,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import type { ReasonCode } from "../protocol/reason-codes.js";
import type { Scheme, TransferMethod } from "../protocol/types.js";
import { settlementStatuses, unfinishedStatuses, type SettlementStatus } from "./settlement-states.js";

/** The unique index that holds one owner's EIP-2612 permit lane per (chain, token) (see settlements). */
export const permitLaneIndex = "settlements_eip2612_permit_lane";

/** The statuses and their transitions: store/settlement-states.ts. */
export const settlementStatus = pgEnum("settlement_status", settlementStatuses);
export type { SettlementStatus };

export const settlements = pgTable(
  "settlements",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    // The payment's identity: one authorization, whatever the signature bytes look like — its nonce
    // in the namespace the chain keeps it in (chain, nonce_contract, payer, nonce).
    chainId: integer("chain_id").notNull(),
    /**
     * The contract whose nonce space `nonce` is in (lowercase 0x address): the token for EIP-3009
     * (authorizationState per token), Permit2 for Permit2 (one bitmap per owner across all tokens).
     */
    nonceContract: text("nonce_contract").notNull(),
    asset: text("asset").notNull(), // lowercase 0x address: the token paid, whatever the method
    payer: text("payer").notNull(), // lowercase 0x address
    nonce: text("nonce").notNull(), // lowercase 0x bytes32 (a Permit2 uint256 nonce as 32 bytes)
    /** "exact" or "upto". */
    scheme: text("scheme").$type<Scheme>().notNull().default("exact"),
    /** "eip3009" or "permit2". */
    transferMethod: text("transfer_method").$type<TransferMethod>().notNull().default("eip3009"),
    payTo: text("pay_to").notNull(),
    /** What this settlement moves to payTo (upto: the charge, at most permitted_atomic; 0: nothing sent). */
    valueAtomic: numeric("value_atomic", { precision: 78, scale: 0 }).notNull(),
    /** What the payer signed for (EIP-3009: the value; Permit2: permitted.amount, upto's cap). */
    permittedAtomic: numeric("permitted_atomic", { precision: 78, scale: 0 }).notNull(),
    validAfterSeconds: numeric("valid_after_seconds", { precision: 78, scale: 0 }).notNull(),
    validBeforeSeconds: numeric("valid_before_seconds", { precision: 78, scale: 0 }).notNull(),
    /** EIP-712 digest of the authorization: "the identical payment" when a retry comes. */
    authorizationDigest: text("authorization_digest").notNull(),
    signature: text("signature").notNull(),
    x402Version: smallint("x402_version").notNull(),
    /** The network name as the caller wrote it, to render answers in its version. */
    network: text("network").notNull(),
    status: settlementStatus("status").notNull(),
    errorReason: text("error_reason").$type<ReasonCode>(),
    errorMessage: text("error_message"),
    // Set together, before broadcast: enough to rebroadcast after a crash.
    txHash: text("tx_hash"),
    rawTx: text("raw_tx"),
    signer: text("signer"),
    txNonce: bigint("tx_nonce", { mode: "number" }),
    gasLimit: bigint("gas_limit", { mode: "number" }),
    /** How many settlements the transaction carries: 1, or a BatchSettler batch shared with other rows. */
    txSettlements: integer("tx_settlements").notNull().default(1),
    broadcastAt: timestamp("broadcast_at", { withTimezone: true }),
    /** Last time the current tx was sent; a submitted tx older than stuckAfterMs gets a fee bump. */
    lastBroadcastAt: timestamp("last_broadcast_at", { withTimezone: true }),
    /** Earlier transactions of this row at the same tx nonce (fee bumps); a receipt for any of them counts. */
    replacedTxHashes: text("replaced_tx_hashes").array().notNull().default(sql`'{}'::text[]`),
    feeBumps: integer("fee_bumps").notNull().default(0),
    /** gasUsed × effectiveGasPrice of the transaction that paid, when it was ours: the sponsor's cost. */
    gasCostWei: numeric("gas_cost_wei", { precision: 78, scale: 0 }),
    /**
     * Failed, and the chain said afterwards that nobody used this authorization (our call failed
     * on its own: a batch's gas, the payer's code, a moved balance): the payment may be settled
     * again, so such a row is reclaimable like one that failed before any broadcast.
     */
    authorizationUnused: boolean("authorization_unused").notNull().default(false),
    /** The API key the settle request came with (null when auth is off). */
    apiKeyId: uuid("api_key_id"),
    /** The transaction that paid (ours, or a front-runner's); set on confirmed. */
    settledTxHash: text("settled_tx_hash"),
    blockNumber: bigint("block_number", { mode: "number" }),
    gasUsed: bigint("gas_used", { mode: "number" }),
    /** An answer of settlement_pending went out: the identical retry may reconcile. */
    pendingAnswered: boolean("pending_answered").notNull().default(false),
    /** success:true went out once; every later answer for this payment is duplicate_settlement. */
    successAnswered: boolean("success_answered").notNull().default(false),
    /** A worker (request or watcher) owns the row until then; others leave it alone. */
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    attempt: integer("attempt").notNull().default(1),
    /**
     * This attempt may submit the payer's EIP-2612 permit (an eip2612GasSponsoring payment that
     * sends something): it holds its (chain, token, owner) permit lane while unfinished — the
     * settlements_eip2612_permit_lane index below, which claim() maps to payer_busy.
     */
    eip2612Permit: boolean("eip2612_permit").notNull().default(false),
    /**
     * This attempt's value is counted against its payer's funds (engine.reserveFunds): set under the
     * payer's advisory lock once the unfinished reserved rows of its (chain, token) and this one fit
     * its balance (and allowance to Permit2); reset by a re-claim. Counted while unfinished.
     */
    fundsReserved: boolean("funds_reserved").notNull().default(false),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("settlements_authorization_key").on(table.chainId, table.nonceContract, table.payer, table.nonce),
    // The permits of one owner share the token's nonces(owner): of two settlements carrying one,
    // only one can use its permit and the other reverts at our cost. At most one such settlement per
    // (chain, token, owner) is unfinished, across all instances: a second claim is a unique violation.
    uniqueIndex(permitLaneIndex)
      .on(table.chainId, table.asset, table.payer)
      .where(sql.raw(`eip2612_permit and status in (${unfinishedStatuses.map((status) => `'${status}'`).join(", ")})`)),
    // What a payer's unfinished settlements have reserved of its funds, summed per (chain, token, payer).
    index("settlements_funds_reserved")
      .on(table.chainId, table.asset, table.payer)
      .where(sql.raw(`funds_reserved and status in (${unfinishedStatuses.map((status) => `'${status}'`).join(", ")})`)),
    index("settlements_unfinished").on(table.status, table.updatedAt).where(sql.raw(`status in (${unfinishedStatuses.map((status) => `'${status}'`).join(", ")})`)),
    index("settlements_created_at").on(table.createdAt),
    // Not unique: the rows of one batch transaction share its hash.
    index("settlements_tx_hash").on(table.txHash).where(sql`tx_hash is not null`),
    index("settlements_api_key_created_at").on(table.apiKeyId, table.createdAt),
    index("settlements_payer").on(table.payer, table.createdAt),
    index("settlements_pay_to").on(table.payTo, table.createdAt),
  ],
);

export type SettlementRow = typeof settlements.$inferSelect;

/**
 * Stripe-style idempotency: one key, one request body, one recorded answer, per caller and route.
 * `scope` is the caller's API key id ('' for callers without one, AUTH=off): tenants never see or
 * take each other's keys. The defaults put rows recorded before scopes existed in the AUTH=off
 * scope of /settle, the only route that took keys then.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    scope: text("scope").notNull().default(""),
    route: text("route").notNull().default("settle"),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    settlementId: uuid("settlement_id"),
    response: jsonb("response"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.scope, table.route, table.key] })],
);

/** Next transaction nonce per signer and chain; the row lock serialises allocation across instances. */
export const signerNonces = pgTable(
  "signer_nonces",
  {
    chainId: integer("chain_id").notNull(),
    address: text("address").notNull(),
    nextNonce: bigint("next_nonce", { mode: "number" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.chainId, table.address] })],
);

/** Nonces handed back after a definite pre-broadcast rejection: reused first, so no gap stays open. */
export const releasedNonces = pgTable(
  "released_nonces",
  {
    chainId: integer("chain_id").notNull(),
    address: text("address").notNull(),
    nonce: bigint("nonce", { mode: "number" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.chainId, table.address, table.nonce] })],
);

/**
 * Callers' API keys. Only a SHA-256 of the key is stored (keys are 32 random bytes, so a fast hash
 * is enough); the key itself is shown once, at creation.
 */
export const apiKeys = pgTable("api_keys", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull(),
  keyHash: text("key_hash").notNull().unique(),
  /** First characters of the key, to recognise it in listings. */
  keyPrefix: text("key_prefix").notNull(),
  /** "client": /verify and /settle; "admin": also the settlement history and dashboard. */
  role: text("role").notNull().default("client"),
  allowedPayTo: text("allowed_pay_to").array(),
  allowedNetworks: text("allowed_networks").array(),
  allowedAssets: text("allowed_assets").array(),
  rateLimitPerMinute: integer("rate_limit_per_minute"),
  dailyGasBudgetWei: numeric("daily_gas_budget_wei", { precision: 78, scale: 0 }),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  revokedAt: timestamp("revoked_at", { withTimezone: true }),
});

export type ApiKeyRow = typeof apiKeys.$inferSelect;

/**
 * A key's gas for one UTC day: what settlements reserved before they were signed (their worst case,
 * gas limit × fee cap) and have not settled yet, and what they really cost. A reservation is taken
 * only while reserved + spent + it stays within the key's daily budget, in one statement, so
 * concurrent settles cannot overspend it.
 */
export const gasBudgetDays = pgTable(
  "gas_budget_days",
  {
    apiKeyId: uuid("api_key_id").notNull(),
    day: date("day").notNull(),
    reservedWei: numeric("reserved_wei", { precision: 78, scale: 0 }).notNull().default("0"),
    spentWei: numeric("spent_wei", { precision: 78, scale: 0 }).notNull().default("0"),
  },
  (table) => [primaryKey({ columns: [table.apiKeyId, table.day] })],
);

/** One settlement attempt's reservation; `settled` once its real cost replaced it (exactly once). */
export const gasReservations = pgTable(
  "gas_reservations",
  {
    settlementId: uuid("settlement_id").notNull(),
    attempt: integer("attempt").notNull(),
    apiKeyId: uuid("api_key_id").notNull(),
    day: date("day").notNull(),
    reservedWei: numeric("reserved_wei", { precision: 78, scale: 0 }).notNull(),
    settled: boolean("settled").notNull().default(false),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.settlementId, table.attempt] })],
);

/** A payer's on-chain failures per (chain, payer): the last one and how many (payer_chain_failures, payer_failed_calls). */
function payerFailureColumns() {
  return {
    chainId: integer("chain_id").notNull(),
    payer: text("payer").notNull(), // lowercase 0x address
    lastFailedAt: timestamp("last_failed_at", { withTimezone: true }).notNull().defaultNow(),
    failures: integer("failures").notNull().default(1),
  };
}

/**
 * The last time a payer's settlement failed on chain with its authorization unused: our call ran
 * and paid nobody although the simulation passed. A payer whose address has code (a smart wallet,
 * an EIP-7702 delegate) can make that happen at will, at our expense; such payers are refused for a
 * while after it (PAYER_CODE_COOLDOWN_MS).
 */
export const payerChainFailures = pgTable("payer_chain_failures", payerFailureColumns(), (table) => [primaryKey({ columns: [table.chainId, table.payer] })]);

/**
 * The last time a payer's settlement call failed on chain by its own doing, whatever its code
 * (receipt.ts failureIsPayersDoing): our call ran and paid nobody although the simulation passed. A
 * key without code does that by moving its funds (balance, Permit2 allowance) away, or burning its
 * nonces, between our simulation and our transaction — every one of its settlements in flight at
 * once. For PAYER_ONE_AT_A_TIME_MS after it the payer has one settlement in flight at a time per
 * token (read in SettlementsRepository.reserveFunds), so a repeat costs us one failed call per
 * transaction of its own.
 */
export const payerFailedCalls = pgTable("payer_failed_calls", payerFailureColumns(), (table) => [primaryKey({ columns: [table.chainId, table.payer] })]);

/**
 * Operator dashboard sessions (POST /dashboard/login): a browser behind a proxy cannot send a
 * Bearer header, so it trades an admin key for a random session token kept in an HttpOnly cookie.
 * Only the token's SHA-256 is stored (32 random bytes: a fast hash is enough, as for API keys). A
 * session is good while it has not expired and its key is not revoked (checked on every request,
 * joined with api_keys), so revoking the key ends its sessions at once, on every instance.
 */
export const dashboardSessions = pgTable(
  "dashboard_sessions",
  {
    tokenHash: text("token_hash").primaryKey(),
    apiKeyId: uuid("api_key_id")
      .notNull()
      .references(() => apiKeys.id, { onDelete: "cascade" }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  },
  (table) => [index("dashboard_sessions_expires_at").on(table.expiresAt), index("dashboard_sessions_api_key_id").on(table.apiKeyId)],
);

/**
 * The Bazaar catalogue (x402 `bazaar` extension, README "Discovery (Bazaar)"): one row per resource
 * a successful settlement described, per `payTo` — a payer chooses the resource's description, so
 * one payTo's entries never replace another's. `accepts` holds the payment options paid for it (one
 * per scheme, network and asset), `extensions` what /discovery answers echo. Bounded by
 * BAZAAR_ENTRIES_MAX, BAZAAR_ENTRIES_PER_PAY_TO_MAX and BAZAAR_ENTRY_MAX_BYTES; rows that no payment
 * refreshed for BAZAAR_ENTRY_TTL_MS are not listed and are deleted on a later write.
 */
export const bazaarResources = pgTable(
  "bazaar_resources",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    payTo: text("pay_to").notNull(), // lowercase 0x address
    /** Canonical URL: origin + routeTemplate (dynamic routes) or path; no query, no fragment. */
    resource: text("resource").notNull(),
    /** "http" or "mcp" (info.input.type). */
    type: text("type").notNull(),
    /** The HTTP method, or the MCP tool name: (resource, tool) is an MCP tool's identity. */
    action: text("action").notNull(),
    x402Version: smallint("x402_version").notNull(),
    accepts: jsonb("accepts").notNull(),
    description: text("description"),
    mimeType: text("mime_type"),
    serviceName: text("service_name"),
    tags: text("tags").array(),
    iconUrl: text("icon_url"),
    extensions: jsonb("extensions").notNull(),
    /** Keys of the payload's extensions (the `extensions` filter). */
    extensionKeys: text("extension_keys").array().notNull(),
    /** Lowercase text /discovery/search matches words against. */
    searchText: text("search_text").notNull(),
    /** Size of the bazaar extension's info and schema as JSON (BAZAAR_ENTRY_MAX_BYTES). */
    bytes: integer("bytes").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    lastUpdated: timestamp("last_updated", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("bazaar_resources_key").on(table.payTo, table.resource, table.type, table.action),
    index("bazaar_resources_pay_to_last_updated").on(table.payTo, table.lastUpdated),
    index("bazaar_resources_last_updated").on(table.lastUpdated),
  ],
);

export type BazaarResourceRow = typeof bazaarResources.$inferSelect;
