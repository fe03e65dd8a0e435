import { describe, expect, it } from "vitest";
import { FacilitatorError } from "../../../src/errors.js";
import { decodeCursor, encodeCursor } from "../../../src/http/history-cursor.js";

/** History cursors come back from callers: only what encodeCursor writes may reach SQL. */
const id = "0b6f1c4e-2a7d-4c1e-9f3a-5d8e7b6a4c21";
const raw = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function expectRefused(cursor: string) {
  let thrown: unknown;
  try {
    decodeCursor(cursor);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(FacilitatorError);
  expect(thrown).toMatchObject({ code: "invalid_payload", httpStatus: 400 });
}

describe("history cursors", () => {
  it("round-trips a position with microseconds, leap days included", () => {
    for (const createdAt of ["2025-01-31T12:34:56.123456Z", "2024-02-29T23:59:59.999999Z", "2000-01-01T00:00:00.000000Z"]) {
      expect(decodeCursor(encodeCursor({ createdAt, id }))).toEqual({ createdAt, id });
    }
  });

  it("lowercases the id, as Postgres prints uuids", () => {
    expect(decodeCursor(encodeCursor({ createdAt: "2025-01-31T12:34:56.123456Z", id: id.toUpperCase() })).id).toBe(id);
  });

  it("refuses dates and times that do not exist with 400 invalid_payload", () => {
    for (const createdAt of [
      "2025-02-30T00:00:00.000000Z", // Date.parse rolls it over to March 2
      "2025-02-29T00:00:00.000000Z", // not a leap year
      "2025-04-31T00:00:00.000000Z",
      "2025-13-01T00:00:00.000000Z",
      "2025-00-10T00:00:00.000000Z",
      "2025-01-00T00:00:00.000000Z",
      "2025-01-31T24:00:00.000000Z",
      "2025-01-31T12:60:00.000000Z",
      "2025-01-31T12:00:60.000000Z",
      "0000-01-01T00:00:00.000000Z", // no year 0 in Postgres
      "1999-12-31T23:59:59.999999Z", // before any row of ours
      "2025-01-31T12:00:00.000Z", // milliseconds: not ours, and would skip rows
      "2025-01-31T12:00:00.000000+01:00",
      "2025-01-31 12:00:00.000000Z",
    ]) {
      expectRefused(encodeCursor({ createdAt, id }));
    }
  });

  it("refuses anything but [timestamp, uuid] with 400 invalid_payload", () => {
    const createdAt = "2025-01-31T12:34:56.123456Z";
    for (const cursor of [
      raw([createdAt, "0000000g-0000-4000-8000-000000000000"]),
      raw([createdAt, `${id} `]),
      raw([createdAt, id, "extra"]),
      raw([createdAt]),
      raw({ createdAt, id }),
      raw([1738326896123, id]),
      raw([createdAt, null]),
      raw("x"),
      Buffer.from("not json").toString("base64url"),
      "",
    ]) {
      expectRefused(cursor);
    }
  });
});
