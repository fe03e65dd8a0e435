/** A high surrogate not followed by a low one, a low one not preceded by a high one, or NUL. */
// eslint-disable-next-line no-control-regex -- NUL is one of the characters Postgres refuses: matching it is the point.
const postgresUnsafe = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\u0000/g;

/**
 * Text Postgres stores as given: `text` refuses NUL, and `jsonb` refuses NUL and lone UTF-16
 * surrogates. Such characters reach us from callers' bodies (echoed in a message) and from payers'
 * contracts (their revert reasons); they become U+FFFD instead of failing the write.
 */
export function postgresSafeText(text: string): string {
  return text.replace(postgresUnsafe, "\ufffd");
}

/** JSON for a jsonb column, every string in it made postgresSafeText. */
export function postgresSafeJson(value: unknown): string {
  return JSON.stringify(value, (_key, field: unknown) => (typeof field === "string" ? postgresSafeText(field) : field));
}
