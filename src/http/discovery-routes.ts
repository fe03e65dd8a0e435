import type { FastifyInstance } from "fastify";
import { Type, type Static } from "typebox";
import { FacilitatorError, InvalidRequestError } from "../errors.js";
import { discoveryConcurrentMax, discoveryOffsetMax, discoveryPageDefault, discoveryPageMax, discoveryQueryMaxChars, discoveryQueryWordsMax } from "../limits.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Services } from "../services.js";
import type { DiscoveryFilter } from "../store/bazaar-repo.js";
import type { BazaarResourceRow } from "../store/schema.js";

/**
 * Bazaar discovery (x402 v2 §8, specs/extensions/bazaar.md "Optional Discovery Endpoints"), in the
 * shapes @x402/extensions 2.27's `withBazaar` client reads: `GET /discovery/resources` →
 * `{ x402Version, items, pagination: { limit, offset, total } }`; `GET /discovery/search` →
 * `{ x402Version, resources, partialResults, pagination: { limit, cursor } }`. Public, like
 * /supported (the catalogue is what resource servers published), rate-limited per IP.
 */
const filterFields = {
  type: Type.Optional(Type.String({ maxLength: 16 })),
  payTo: Type.Optional(Type.String({ maxLength: 128 })),
  scheme: Type.Optional(Type.String({ maxLength: 64 })),
  network: Type.Optional(Type.String({ maxLength: 128 })),
  /** An extension key, or several separated by commas (all present). */
  extensions: Type.Optional(Type.String({ maxLength: 1_024 })),
};
/** Larger limits are answered with discoveryPageMax (and say so in pagination.limit). */
const Limit = Type.Optional(Type.Integer({ minimum: 1 }));

const ResourcesQuery = Type.Object({ ...filterFields, limit: Limit, offset: Type.Optional(Type.Integer({ minimum: 0, maximum: discoveryOffsetMax })) });
const SearchQuery = Type.Object({ query: Type.String({ minLength: 1, maxLength: discoveryQueryMaxChars }), ...filterFields, limit: Limit, cursor: Type.Optional(Type.String({ maxLength: 64 })) });

/** Pages beyond this offset are not served (a search cursor is an offset): deep pages cost Postgres a scan each. */
const searchOffsetMax = discoveryOffsetMax;

/**
 * Discovery is public and its queries run on the pool the payment path uses: at most
 * discoveryConcurrentMax of them at once per instance, the rest answered 429 at once, so a flood of
 * searches cannot take the connections /settle needs.
 */
function concurrencyGate(max: number) {
  let running = 0;
  return async <T>(work: () => Promise<T>): Promise<T> => {
    if (running >= max) throw new FacilitatorError(ReasonCode.rateLimited, "discovery is busy; retry shortly");
    running += 1;
    try {
      return await work();
    } finally {
      running -= 1;
    }
  };
}

export async function discoveryRoutes(app: FastifyInstance, options: { services: Services; rateLimitPerMinute: number }): Promise<void> {
  const gated = concurrencyGate(discoveryConcurrentMax);
  // Payer-written text is served here: never sniffed as anything but JSON.
  app.addHook("onSend", async (_request, reply) => {
    reply.header("x-content-type-options", "nosniff");
  });
  const { services } = options;
  const limits = services.deps.limits;
  const rateLimit = { max: options.rateLimitPerMinute, timeWindow: 60_000, keyGenerator: (request: { ip: string }) => `ip:${request.ip}` };

  app.get("/discovery/resources", { schema: { summary: "Bazaar: list catalogued resources (x402 v2 §8.1)", querystring: ResourcesQuery }, config: { rateLimit } }, async (request) => {
    const query = request.query as Static<typeof ResourcesQuery>;
    const limit = Math.min(query.limit ?? discoveryPageDefault, discoveryPageMax);
    const offset = query.offset ?? 0;
    const { rows, total } = await gated(() => services.discovery.list(filterOf(query), { limit, offset }, limits.bazaarEntryTtlMs));
    return { x402Version: 2, items: rows.map(discoveryResource), pagination: { limit, offset, total } };
  });

  app.get("/discovery/search", { schema: { summary: "Bazaar: search catalogued resources by words", querystring: SearchQuery }, config: { rateLimit } }, async (request) => {
    const query = request.query as Static<typeof SearchQuery>;
    const words = wordsOf(query.query);
    if (words.length === 0) throw new InvalidRequestError(ReasonCode.invalidPayload, "query must contain a word");
    const limit = Math.min(query.limit ?? discoveryPageDefault, discoveryPageMax);
    const offset = query.cursor === undefined ? 0 : offsetOf(query.cursor);
    const { rows, more } = await gated(() => services.discovery.search(words, filterOf(query), { limit, offset }, limits.bazaarEntryTtlMs));
    const next = more && offset + limit <= searchOffsetMax ? cursorOf(offset + limit) : null;
    // Nothing is truncated: what a page leaves out, its cursor reaches (up to searchOffsetMax).
    return { x402Version: 2, resources: rows.map(discoveryResource), partialResults: more && next === null, pagination: { limit, cursor: next } };
  });
}

function filterOf(query: Static<typeof ResourcesQuery> | Static<typeof SearchQuery>): DiscoveryFilter {
  const extensions = query.extensions
    ?.split(",")
    .map((key) => key.trim())
    .filter((key) => key.length > 0);
  return {
    ...(query.type !== undefined ? { type: query.type } : {}),
    ...(query.payTo !== undefined ? { payTo: query.payTo } : {}),
    ...(query.scheme !== undefined ? { scheme: query.scheme } : {}),
    ...(query.network !== undefined ? { network: query.network } : {}),
    ...(extensions !== undefined && extensions.length > 0 ? { extensions } : {}),
  };
}

/** Lowercase words of the query, at most discoveryQueryWordsMax, each matched as a substring. */
function wordsOf(text: string): string[] {
  const words = text
    .toLowerCase()
    .split(/[^\p{L}\p{N}_./:-]+/u)
    .filter((word) => word.length > 0);
  return [...new Set(words)].slice(0, discoveryQueryWordsMax);
}

/** An opaque cursor: the next page's offset. */
function cursorOf(offset: number): string {
  return Buffer.from(`o:${offset}`).toString("base64url");
}

function offsetOf(cursor: string): number {
  const match = /^o:(\d{1,6})$/.exec(Buffer.from(cursor, "base64url").toString());
  const offset = match ? Number(match[1]) : Number.NaN;
  if (!(offset >= 0 && offset <= searchOffsetMax)) throw new InvalidRequestError(ReasonCode.invalidPayload, "cursor is not one this facilitator handed out");
  return offset;
}

/** A catalogue row as @x402/extensions' DiscoveryResource (lastUpdated: ISO 8601, as that type says). */
function discoveryResource(row: BazaarResourceRow) {
  return {
    resource: row.resource,
    type: row.type,
    x402Version: row.x402Version,
    accepts: row.accepts,
    lastUpdated: row.lastUpdated.toISOString(),
    ...(row.description !== null ? { description: row.description } : {}),
    ...(row.mimeType !== null ? { mimeType: row.mimeType } : {}),
    ...(row.serviceName !== null ? { serviceName: row.serviceName } : {}),
    ...(row.tags !== null ? { tags: row.tags } : {}),
    ...(row.iconUrl !== null ? { iconUrl: row.iconUrl } : {}),
    extensions: row.extensions,
  };
}
