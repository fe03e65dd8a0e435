import { domainToASCII } from "node:url";
import type { PaymentRequest } from "../protocol/types.js";

/**
 * From a settled v2 payment to a Bazaar catalogue entry, or the reason it is skipped. Pure and cheap
 * (bounded by BAZAAR_ENTRY_MAX_BYTES): everything here is the payer's input — the resource server
 * declared the extension, but the client echoes it and may change it — so each field is checked the
 * way specs/extensions/bazaar.md says (routeTemplate, serviceName, tags, iconUrl) or bounded here.
 * What this cannot do cheaply, validating `info` against the payload's own JSON Schema, is left to
 * schema-validator.ts (a worker thread: a schema's regular expressions are the payer's code).
 */

export type SkipReason = "malformed" | "too_large";

export interface BazaarEntry {
  /** Lowercase 0x address: one payTo's entries never replace another's. */
  payTo: string;
  /** origin + routeTemplate (a valid one) or origin + path: no query, no fragment. */
  resource: string;
  type: "http" | "mcp";
  /** HTTP method, or MCP tool name. */
  action: string;
  x402Version: 2;
  /** This payment's requirements, as the answers list them in `accepts`. */
  accept: AcceptedRequirements;
  description?: string;
  mimeType?: string;
  serviceName?: string;
  tags?: string[];
  iconUrl?: string;
  /** What the answers echo: `bazaar` as checked (info, schema, routeTemplate when valid); other keys as `{}`. */
  extensions: Record<string, unknown>;
  extensionKeys: string[];
  searchText: string;
  /** info and schema as JSON, UTF-8 bytes. */
  bytes: number;
}

export interface AcceptedRequirements {
  scheme: string;
  network: string;
  amount: string;
  asset: string;
  payTo: string;
  maxTimeoutSeconds?: number;
  extra?: Record<string, unknown>;
}

export type Extraction =
  | { ok: true; entry: BazaarEntry; infoJson: string; schemaJson: string }
  | { ok: false; reason: SkipReason; message: string }
  /** No `bazaar` extension, or not x402 v2 (the spec does not ask facilitators to catalogue v1). */
  | { ok: false; reason: "absent" };

const resourceUrlMaxChars = 2_048;
const descriptionMaxChars = 1_024;
const mimeTypeMaxChars = 128;
const toolNameMaxChars = 128;
const routeTemplateMaxChars = 512;
const extraMaxBytes = 1_024;
const extensionKeysMax = 16;
const extensionKeyPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** JSON nesting of info and schema at most (the worker's schema compiler recurses). */
const jsonDepthMax = 64;
const searchTextMaxChars = 4_096;

const queryMethods = new Set(["GET", "HEAD", "DELETE"]);
const bodyMethods = new Set(["POST", "PUT", "PATCH"]);
const bodyTypes = new Set(["json", "form-data", "text"]);
const mcpTransports = new Set(["streamable-http", "sse"]);
const draft202012 = new Set(["https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#"]);

/** The Bazaar entry a successful settlement of `payment` describes, from the request body as sent. */
export function extractBazaarEntry(body: unknown, payment: PaymentRequest, entryMaxBytes: number): Extraction {
  if (payment.x402Version !== 2) return { ok: false, reason: "absent" };
  const paymentPayload = objectOr(objectOr(body)?.paymentPayload);
  const extensions = objectOr(paymentPayload?.extensions);
  if (extensions?.bazaar === undefined) return { ok: false, reason: "absent" };
  const skip = (reason: SkipReason, message: string) => ({ ok: false as const, reason, message });

  const bazaar = objectOr(extensions.bazaar);
  const info = objectOr(bazaar?.info);
  const schema = objectOr(bazaar?.schema);
  if (!bazaar || !info || !schema) return skip("malformed", "extensions.bazaar needs an info object and a schema object");
  let infoJson: string;
  let schemaJson: string;
  try {
    infoJson = JSON.stringify(info);
    schemaJson = JSON.stringify(schema);
  } catch {
    return skip("malformed", "extensions.bazaar is nested too deeply");
  }
  const bytes = Buffer.byteLength(infoJson) + Buffer.byteLength(schemaJson);
  if (bytes > entryMaxBytes) return skip("too_large", `extensions.bazaar info and schema are ${bytes} bytes, more than BAZAAR_ENTRY_MAX_BYTES (${entryMaxBytes})`);
  if (depthOf(info) > jsonDepthMax || depthOf(schema) > jsonDepthMax) return skip("malformed", `extensions.bazaar is nested more than ${jsonDepthMax} deep`);

  if (schema.$schema !== undefined && !draft202012.has(schema.$schema as string)) return skip("malformed", "schema must be JSON Schema draft 2020-12");
  if (hasExternalReference(schema)) return skip("malformed", "schema must not contain external $ref/$id references");

  const input = objectOr(info.input);
  if (!input) return skip("malformed", "info.input must be an object");
  let type: "http" | "mcp";
  let action: string;
  let mcpDescription: string | undefined;
  if (input.type === "http") {
    type = "http";
    const method = input.method;
    if (typeof method !== "string" || !(queryMethods.has(method) || bodyMethods.has(method))) return skip("malformed", "info.input.method must be GET, HEAD, DELETE, POST, PUT or PATCH");
    if (input.bodyType !== undefined && (!bodyTypes.has(input.bodyType as string) || !bodyMethods.has(method))) {
      return skip("malformed", "info.input.bodyType must be json, form-data or text, and only with POST, PUT or PATCH");
    }
    action = method;
  } else if (input.type === "mcp") {
    type = "mcp";
    // The spec's table names it `tool`; @x402/extensions 2.27 declares `toolName`.
    const tool = input.toolName ?? input.tool;
    if (typeof tool !== "string" || tool.length === 0 || tool.length > toolNameMaxChars) return skip("malformed", `info.input.toolName must be a string of 1-${toolNameMaxChars} characters`);
    if (!objectOr(input.inputSchema)) return skip("malformed", "info.input.inputSchema must be an object");
    if (input.transport !== undefined && !mcpTransports.has(input.transport as string)) return skip("malformed", "info.input.transport must be streamable-http or sse");
    action = tool;
    mcpDescription = boundedString(input.description, descriptionMaxChars);
  } else {
    return skip("malformed", 'info.input.type must be "http" or "mcp"');
  }

  const resourceInfo = objectOr(paymentPayload?.resource);
  const url = typeof resourceInfo?.url === "string" && resourceInfo.url.length <= resourceUrlMaxChars ? parseHttpUrl(resourceInfo.url) : undefined;
  if (!url) return skip("malformed", `paymentPayload.resource.url must be an absolute http(s) URL of at most ${resourceUrlMaxChars} characters`);
  // An absent or invalid routeTemplate means "the concrete path" (bazaar.md, routeTemplate); MCP routes have none.
  const rawTemplate = typeof bazaar.routeTemplate === "string" ? bazaar.routeTemplate : undefined;
  const routeTemplate = type === "http" && rawTemplate !== undefined && rawTemplate.length <= routeTemplateMaxChars && isValidRouteTemplate(rawTemplate) ? rawTemplate : undefined;
  const resource = `${url.origin}${routeTemplate ?? url.pathname}`;

  const description = boundedString(resourceInfo?.description, descriptionMaxChars);
  const mimeType = boundedString(resourceInfo?.mimeType, mimeTypeMaxChars);
  const serviceName = isValidServiceName(resourceInfo?.serviceName) ? resourceInfo.serviceName : undefined;
  const tags = sanitizeTags(resourceInfo?.tags);
  const iconUrl = isValidIconUrl(resourceInfo?.iconUrl) ? resourceInfo.iconUrl : undefined;

  const extensionKeys = Object.keys(extensions).filter((key) => extensionKeyPattern.test(key)).slice(0, extensionKeysMax);
  if (!extensionKeys.includes("bazaar")) extensionKeys.unshift("bazaar");
  // Other extensions are echoed as present but empty: their info is per payment (a payment identifier's id).
  const echoed: Record<string, unknown> = Object.fromEntries(extensionKeys.map((key) => [key, {}]));
  echoed.bazaar = { info, schema, ...(routeTemplate !== undefined ? { routeTemplate } : {}) };

  const searchText = [resource, description, serviceName, ...(tags ?? []), type, action, mcpDescription]
    .filter((part): part is string => part !== undefined)
    .join(" ")
    .toLowerCase()
    .slice(0, searchTextMaxChars);

  const entry: BazaarEntry = {
    payTo: payment.requirements.payTo.toLowerCase(),
    resource,
    type,
    action,
    x402Version: 2,
    accept: acceptedRequirements(objectOr(objectOr(body)?.paymentRequirements), payment),
    ...(description !== undefined ? { description } : {}),
    ...(mimeType !== undefined ? { mimeType } : {}),
    ...(serviceName !== undefined ? { serviceName } : {}),
    ...(tags !== undefined ? { tags } : {}),
    ...(iconUrl !== undefined ? { iconUrl } : {}),
    extensions: echoed,
    extensionKeys,
    searchText,
    bytes,
  };
  return { ok: true, entry, infoJson, schemaJson };
}

/** The requirements as the caller sent them (v2 field names), fields we know only; `extra` bounded. */
function acceptedRequirements(raw: Record<string, unknown> | undefined, payment: PaymentRequest): AcceptedRequirements {
  const { requirements } = payment;
  const accept: AcceptedRequirements = {
    scheme: requirements.scheme,
    network: requirements.network,
    amount: requirements.amountAtomic.toString(),
    asset: requirements.asset,
    payTo: requirements.payTo,
  };
  if (typeof raw?.maxTimeoutSeconds === "number") accept.maxTimeoutSeconds = raw.maxTimeoutSeconds;
  const extra = objectOr(raw?.extra);
  if (extra && Buffer.byteLength(JSON.stringify(extra)) <= extraMaxBytes) accept.extra = extra;
  return accept;
}

function objectOr(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function boundedString(value: unknown, maxChars: number): string | undefined {
  return typeof value === "string" && value.length > 0 && value.length <= maxChars ? value : undefined;
}

function parseHttpUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url : undefined;
  } catch {
    return undefined;
  }
}

/** Nesting depth of a JSON value, without recursion (a deep value must not overflow the stack here). */
function depthOf(root: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== "object" || value === null) continue;
    deepest = Math.max(deepest, depth);
    if (deepest > jsonDepthMax) return deepest;
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * A `$ref` or `$id` that is not a same-document fragment ("#…") could make a schema compiler fetch
 * or read something: the schema is the payer's input, so only fragments are accepted.
 */
function hasExternalReference(root: unknown): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== "object" || value === null) continue;
    for (const [key, child] of Object.entries(value)) {
      if ((key === "$ref" || key === "$id" || key === "$dynamicRef") && !(typeof child === "string" && child.startsWith("#"))) return true;
      stack.push(child);
    }
  }
  return false;
}

/** bazaar.md "routeTemplate Validation Rules". */
const routeTemplatePattern = /^\/[a-zA-Z0-9_/:.\-~%]+$/;
const percentDecodePassesMax = 5;

export function isValidRouteTemplate(value: string): boolean {
  if (!routeTemplatePattern.test(value)) return false;
  // Decoded to a fixed point first, so %2e%2e and %252e%252e are caught as "..".
  let decoded = value;
  for (let pass = 0; ; pass += 1) {
    if (pass === percentDecodePassesMax) return false;
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return false;
    }
    if (next === decoded) break;
    decoded = next;
  }
  return !decoded.includes("..") && !decoded.includes("://");
}

/** bazaar.md "Service Metadata on resource": printable ASCII, 1-32 characters. */
const printableAscii = /^[\x20-\x7e]+$/;
const serviceNameMaxChars = 32;
const tagMaxChars = 32;
const tagsMax = 5;
const iconUrlMaxChars = 2_048;

export function isValidServiceName(value: unknown): value is string {
  return typeof value === "string" && value.length <= serviceNameMaxChars && printableAscii.test(value);
}

/** At most 5 valid tags, deduplicated case-insensitively (first wins); undefined when none survive. */
export function sanitizeTags(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const kept: string[] = [];
  const seen = new Set<string>();
  for (const tag of value) {
    if (typeof tag !== "string" || tag.length > tagMaxChars || !printableAscii.test(tag)) continue;
    const folded = tag.toLowerCase();
    if (seen.has(folded)) continue;
    seen.add(folded);
    kept.push(tag);
    if (kept.length === tagsMax) break;
  }
  return kept.length > 0 ? kept : undefined;
}

const loopbackHostnames = new Set(["localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"]);

/** An absolute http(s) URL with a DNS host: no IP literal (any spelling), no loopback name, no userinfo. */
export function isValidIconUrl(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > iconUrlMaxChars || /\p{Cc}/u.test(value)) return false;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username !== "" || url.password !== "" || url.host.startsWith("[")) return false;
  let hostname: string;
  try {
    hostname = domainToASCII(decodeURIComponent(url.hostname)).toLowerCase();
  } catch {
    return false;
  }
  if (hostname === "" || loopbackHostnames.has(hostname)) return false;
  return !/^\d{1,3}(\.\d{1,3}){3}$/.test(hostname) && !/^\d+$/.test(hostname) && !/^0x[0-9a-f]+$/.test(hostname);
}
