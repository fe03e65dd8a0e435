/**
 * Redaction of URLs in whatever text leaves the process: log lines, HTTP answers, stored error
 * messages.
 *
 * Why: RPC providers put the API key in the URL (Alchemy `/v2/KEY`, QuickNode `/KEY/`, Infura
 * `/v3/KEY`, `?apikey=KEY`, `https://user:KEY@host`) and viem copies the URL into its errors
 * (`URL: …` in `message` and `metaMessages`, the `.url` field), so any error passed on as text
 * carries the key. What is kept is what an operator needs to tell RPCs apart, as in the metrics
 * labels: scheme, host and port. Any `scheme://` URL is redacted, not only http(s)/ws(s): a
 * Postgres URL holds a password the same way. Only file:// URLs (stack frames) are left as they are.
 */

/** Text longer than this is cut before it is scanned: redaction work is bounded, and so is what it passes on. */
export const redactTextMaxChars = 16_384;
/** Stands for the path, query, fragment and userinfo of a redacted URL. */
export const urlRedactionMarker = "…";

/*
 * How long a message may be where it goes: every cut of an error message for an answer, a stored
 * row or a status line is one of these (redaction's own scan bound is redactTextMaxChars above).
 */
/** An answer's message on the wire (`invalidMessage`, `errorMessage`, `message`): revert texts and RPC errors can be long. */
export const wireMessageMaxChars = 500;
/** settlements.error_message is read back into answers and by operators: long enough for a revert text, no longer. */
export const storedErrorMessageMaxChars = 1_000;
/** A one-line status (/ready's "down: …", the `signers` command's "unreachable: …"): the error's first line, at most this long. */
export const statusLineMaxChars = 200;

/** An error's cause chain is followed this deep (viem's nest 3-4; a cycle ends sooner). */
const causeDepthMax = 8;
/** Fields, array items and AggregateError members kept per level of a serialized error. */
const itemsMax = 32;
/** Plain objects inside an error (viem's request `body`, say) are followed this deep. */
const objectDepthMax = 3;

/**
 * scheme://authority, then path/query/fragment. The scheme is at most 32 characters, so a long
 * word without `://` costs a bounded look-ahead per character. Authority and rest stop at
 * whitespace, quotes, backticks, angle brackets and backslashes: a URL quoted in text or in JSON
 * (where a newline after it is the two characters `\n`) ends where its quotation does.
 */
const urlPattern = /([a-z][a-z0-9+.-]{0,31}):\/\/([^\s/?#"'`<>\\]*)([^\s"'`<>\\]*)/gi;

/** Sentence punctuation after a URL in prose ("see https://x/KEY, then"); never part of an API key. */
const punctuationChars = ".,;:!?)]}";

/** Counted by a loop from the end, not a `[…]+$` regex: that one is quadratic on a long run of dots. */
function trailingPunctuationLength(text: string): number {
  let length = 0;
  while (length < text.length && punctuationChars.includes(text[text.length - 1 - length]!)) length += 1;
  return length;
}

function redactMatch(whole: string, scheme: string, authority: string, rest: string): string {
  // file:// URLs are local paths (stack frames of ES modules), never a key: keep stacks readable.
  if (scheme.toLowerCase() === "file") return whole;
  const userinfoEnd = authority.lastIndexOf("@");
  const path = rest.slice(0, rest.length - trailingPunctuationLength(rest));
  const punctuation = rest.slice(path.length);
  // A bare scheme://host[:port][/] holds no secret: leave it readable as it was.
  if (userinfoEnd < 0 && (path === "" || path === "/")) return whole;
  return `${scheme}://${authority.slice(userinfoEnd + 1)}/${urlRedactionMarker}${punctuation}`;
}

/**
 * Every URL in `text` reduced to scheme://host[:port]/… (path, query, fragment and userinfo gone).
 * Text past `maxChars` is dropped, never passed on unscanned.
 */
export function redactUrls(text: string, maxChars: number = redactTextMaxChars): string {
  if (text.length <= maxChars) return text.replace(urlPattern, redactMatch);
  const dropped = text.length - maxChars;
  return `${text.slice(0, maxChars).replace(urlPattern, redactMatch)}… [${dropped} more characters not shown]`;
}

/**
 * The form of a message that is sent or stored: redacted, then cut to `maxChars`. It is scanned
 * up to four times that, so a URL the cut falls inside is redacted whole, never half shown.
 */
export function redactedExcerpt(text: string, maxChars: number): string {
  return redactUrls(text, maxChars * 4).slice(0, maxChars);
}

/** One URL as scheme://host[:port], nothing else: the form of metric labels. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return "invalid-url";
  }
}

/**
 * The redacted message of an error (or the redacted text of any other thrown value): what to put
 * in an answer, a stored error_message or a log field instead of `String(error)` / `error.message`.
 */
export function redactedMessage(error: unknown, maxChars: number = redactTextMaxChars): string {
  if (error instanceof Error) return redactUrls(error.message, maxChars);
  try {
    return redactUrls(String(error), maxChars);
  } catch {
    return "unprintable error";
  }
}

/** The first line of an error's redacted message, cut to `maxChars`: for one-line status reports (a URL the cut falls in is redacted whole). */
export function redactedFirstLine(error: unknown, maxChars: number = statusLineMaxChars): string {
  return redactedMessage(error, maxChars * 4).split("\n")[0]!.slice(0, maxChars);
}

/**
 * An error as a plain object for a log line — type, message, stack, its own fields (viem's
 * `shortMessage`, `details`, `metaMessages`, `url`; our `code`), its AggregateError members and
 * its cause chain — with every string redacted and every level bounded. A string is redacted;
 * other values pass through (the logger redacts the written line as a whole anyway).
 */
export function redactError(value: unknown): unknown {
  if (typeof value === "string") return redactUrls(value);
  if (!(value instanceof Error)) return value;
  return serializeError(value, new Set(), 0);
}

function serializeError(error: Error, seen: Set<Error>, depth: number): Record<string, unknown> {
  seen.add(error);
  const serialized: Record<string, unknown> = { type: error.name, message: redactUrls(error.message) };
  for (const key of Object.keys(error).slice(0, itemsMax)) {
    if (key === "name" || key === "message" || key === "stack" || key === "cause" || key === "errors") continue;
    const field = redactValue((error as unknown as Record<string, unknown>)[key], 0);
    if (field !== undefined) serialized[key] = field;
  }
  if (typeof error.stack === "string") serialized.stack = redactUrls(error.stack);
  const members = (error as { errors?: unknown }).errors;
  if (Array.isArray(members)) serialized.errors = members.slice(0, itemsMax).map((member) => nested(member, seen, depth));
  if (error.cause !== undefined) serialized.cause = nested(error.cause, seen, depth);
  return serialized;
}

/** A cause or an AggregateError member: serialized one level down, unless that repeats or goes too deep. */
function nested(value: unknown, seen: Set<Error>, depth: number): unknown {
  if (!(value instanceof Error)) return redactValue(value, 0);
  if (seen.has(value)) return "[circular cause]";
  if (depth + 1 >= causeDepthMax) return `[cause chain cut at depth ${causeDepthMax}]`;
  return serializeError(value, seen, depth + 1);
}

/** A field of an error, JSON-safe and bounded, with every string in it redacted. */
function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === "string") return redactUrls(value);
  if (typeof value === "bigint") return value.toString();
  if (value === null || typeof value === "number" || typeof value === "boolean") return value;
  if (typeof value !== "object") return undefined; // undefined, functions, symbols
  if (value instanceof Error) return redactedMessage(value);
  if (depth >= objectDepthMax) return "[object]";
  if (Array.isArray(value)) return value.slice(0, itemsMax).map((item) => redactValue(item, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value).slice(0, itemsMax)) copy[key] = redactValue((value as Record<string, unknown>)[key], depth + 1);
  return copy;
}
