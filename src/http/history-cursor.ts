import { FacilitatorError } from "../errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { HistoryPosition } from "../store/history-repo.js";

/**
 * History cursors: opaque to callers, base64url of JSON [created_at with microseconds, id].
 *
 * A cursor comes back from the caller, so it is input like any other: its fields go into SQL as
 * `::timestamptz` and `::uuid`, and whatever Postgres cannot read there was a 500 with the query
 * in the log. decodeCursor accepts only what encodeCursor could have written.
 */

/** UTC with six fractional digits, as history-repo's exactCreatedAt writes it. */
const timestampPattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$/;
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Rows are created by now(): a cursor outside these years was not written by us. */
const cursorYearMin = 2000;
const cursorYearMax = 9999;

export function encodeCursor(position: HistoryPosition): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id]), "utf8").toString("base64url");
}

/** The position a cursor holds; anything else is 400 invalid_payload. */
export function decodeCursor(cursor: string): HistoryPosition {
  const decoded = parseJson(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!Array.isArray(decoded) || decoded.length !== 2) throw invalidCursor();
  const [createdAt, id] = decoded as unknown[];
  if (typeof createdAt !== "string" || !isExactUtcTimestamp(createdAt)) throw invalidCursor();
  if (typeof id !== "string" || !uuidPattern.test(id)) throw invalidCursor();
  return { createdAt, id: id.toLowerCase() };
}

/**
 * True for a real instant written the way we write it: the calendar fields must round-trip
 * through Date, which rules out 2025-02-30, 24:00:00, :60 seconds and month 13 (Date.parse alone
 * accepts the first two and rolls them over; Postgres refuses some of them).
 */
function isExactUtcTimestamp(text: string): boolean {
  const match = timestampPattern.exec(text);
  if (!match) return false;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (year < cursorYearMin || year > cursorYearMax) return false;
  const instant = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  return (
    instant.getUTCFullYear() === year &&
    instant.getUTCMonth() === month - 1 &&
    instant.getUTCDate() === day &&
    instant.getUTCHours() === hour &&
    instant.getUTCMinutes() === minute &&
    instant.getUTCSeconds() === second
  );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function invalidCursor(): FacilitatorError {
  return new FacilitatorError(ReasonCode.invalidPayload, "cursor is not one this facilitator issued: pass nextCursor from a previous page unchanged");
}
