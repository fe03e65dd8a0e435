/**
 * The price of one chat completion's maximum, fixed before the model runs: the amount of an x402
 * `exact` payment, and the cap the buyer signs with `upto`:
 *
 *   estimatedTokens = ceil(promptChars / 4) + maxOutputTokens × n
 *   amount          = max(1, ceil(estimatedTokens / 1000 × PRICE_PER_1K_TOKENS × 10^6))   atomic USDC
 *
 * - promptChars: the text of every message — string `content`, the `text` of text parts; any other part
 *   (an image, audio…) counts as the length of its JSON; `tool_calls` count as their JSON too; and the
 *   request's other prompt inputs (`tools`, `functions`, `tool_choice`, `response_format`) as their JSON
 *   (the upstream puts them in the prompt). Four characters a token underestimates some scripts (CJK):
 *   with `upto` the charge comes from the upstream's `usage` anyway, within the cap.
 * - maxOutputTokens: the larger of `max_tokens` and `max_completion_tokens` (upstreams differ in which one
 *   they obey: a body with a small one and a large other must be priced at the large one), else
 *   DEFAULT_MAX_TOKENS. When the request sets neither, the proxy forwards `max_tokens = DEFAULT_MAX_TOKENS`
 *   so the model cannot outrun the price.
 * - n: the number of choices asked for (default 1); each may use maxOutputTokens.
 *
 * All arithmetic is in integers (the price is parsed as a decimal string), so a quote never depends on
 * floating-point rounding: the same body always gives the same amount, which is what lets the paid
 * request be matched against what the buyer signed.
 *
 * With `upto` the charge is known after the model ran, from the upstream's `usage`:
 *
 *   charge = min(cap, max(1, ceil((prompt_tokens + completion_tokens) / 1000 × PRICE_PER_1K_TOKENS × 10^6)))
 *
 * the same per-token price and rounding as the quote, never above what the buyer signed, and never 0
 * (a 0 charge sends no transaction and takes nothing: the buyer would be served for free, its
 * signature left unspent and chargeable again).
 */
export const CHARS_PER_TOKEN = 4;
/** PRICE_PER_1K_TOKENS may have at most this many decimals (USD). */
export const PRICE_DECIMALS = 12;
const PRICE_SCALE = 10n ** BigInt(PRICE_DECIMALS);
const ATOMIC_PER_USD = 10n ** 6n;

export interface ChatMessage {
  role?: unknown;
  content?: unknown;
  tool_calls?: unknown;
}

/** The fields of an OpenAI chat-completion request the proxy reads; everything else is forwarded as is. */
export interface ChatRequest {
  messages: ChatMessage[];
  max_tokens?: number;
  max_completion_tokens?: number;
  n?: number;
  stream?: boolean;
  [field: string]: unknown;
}

export interface Quote {
  promptTokens: number;
  maxOutputTokens: number;
  estimatedTokens: number;
  /** Atomic units of the asset (6 decimals), as a decimal string. */
  amount: string;
}

/** "0.001" → 1_000_000_000n (USD × 10^12). Throws on anything but a plain non-negative decimal. */
export function parseUsdPrice(text: string): bigint {
  const match = /^(\d{1,9})(?:\.(\d{1,12}))?$/.exec(text.trim());
  if (!match) throw new Error(`not a non-negative decimal with at most ${PRICE_DECIMALS} decimals: "${text}"`);
  const [, whole = "0", fraction = ""] = match;
  return BigInt(whole) * PRICE_SCALE + BigInt(fraction.padEnd(PRICE_DECIMALS, "0"));
}

export function promptCharacters(messages: ChatMessage[]): number {
  let chars = 0;
  for (const message of messages) {
    const { content } = message;
    if (typeof content === "string") chars += content.length;
    else if (Array.isArray(content)) {
      for (const part of content) {
        const text = (part as { type?: unknown; text?: unknown } | null)?.text;
        chars += typeof text === "string" ? text.length : JSON.stringify(part ?? null).length;
      }
    } else if (content != null) chars += JSON.stringify(content).length;
    if (message.tool_calls != null) chars += JSON.stringify(message.tool_calls).length;
  }
  return chars;
}

export function maxOutputTokens(request: ChatRequest, defaultMaxTokens: number): number {
  if (request.max_tokens === undefined && request.max_completion_tokens === undefined) return defaultMaxTokens;
  return Math.max(request.max_tokens ?? 0, request.max_completion_tokens ?? 0);
}

/** Request fields besides `messages` that the upstream renders into the prompt: counted as their JSON. */
const promptInputFields = ["tools", "functions", "tool_choice", "response_format"] as const;

/** Characters of the prompt inputs outside `messages` (promptInputFields). */
export function promptInputCharacters(request: ChatRequest): number {
  let chars = 0;
  for (const field of promptInputFields) if (request[field] != null) chars += JSON.stringify(request[field]).length;
  return chars;
}

/** `tokens` at the per-1K price, in atomic units, rounded up, at least 1. */
export function priceOfTokens(tokens: bigint, pricePer1kScaled: bigint): bigint {
  // tokens/1000 × price(USD×10^12) × 10^6 / 10^12, rounded up
  const numerator = tokens * pricePer1kScaled * ATOMIC_PER_USD;
  const denominator = 1000n * PRICE_SCALE;
  const atomic = (numerator + denominator - 1n) / denominator;
  return atomic < 1n ? 1n : atomic;
}

export function quote(request: ChatRequest, pricePer1kScaled: bigint, defaultMaxTokens: number): Quote {
  const promptTokens = Math.ceil((promptCharacters(request.messages) + promptInputCharacters(request)) / CHARS_PER_TOKEN);
  const outputTokens = maxOutputTokens(request, defaultMaxTokens);
  const estimatedTokens = promptTokens + outputTokens * (request.n ?? 1);
  return { promptTokens, maxOutputTokens: outputTokens, estimatedTokens, amount: priceOfTokens(BigInt(estimatedTokens), pricePer1kScaled).toString() };
}

/** The tokens an OpenAI-compatible upstream reports it used (`usage` of a completion or of the last stream chunk). */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/** `usage` as the upstream sent it, or undefined when it is missing or not two non-negative integer counts. */
export function parseUsage(value: unknown): Usage | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const { prompt_tokens: prompt, completion_tokens: completion } = value as { prompt_tokens?: unknown; completion_tokens?: unknown };
  const count = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!count(prompt) || !count(completion)) return undefined;
  return { promptTokens: prompt, completionTokens: completion };
}

/** What an `upto` payment is charged for `usage`: its tokens at the quote's price, at most `capAtomic`. */
export function chargeForUsage(usage: Usage, pricePer1kScaled: bigint, capAtomic: bigint): bigint {
  const atomic = priceOfTokens(BigInt(usage.promptTokens) + BigInt(usage.completionTokens), pricePer1kScaled);
  return atomic > capAtomic ? capAtomic : atomic;
}

/**
 * Checks the body is a chat-completion request the proxy can price. Returns a message for the
 * client when it is not (the proxy answers 400 before asking for any payment).
 */
export function parseChatRequest(body: unknown): { ok: true; request: ChatRequest } | { ok: false; message: string } {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return { ok: false, message: "the body must be a JSON object" };
  const request = body as Record<string, unknown>;
  if (!Array.isArray(request.messages) || request.messages.length === 0) return { ok: false, message: "`messages` must be a non-empty array" };
  if (!request.messages.every((m) => m !== null && typeof m === "object" && !Array.isArray(m))) {
    return { ok: false, message: "every entry of `messages` must be an object" };
  }
  for (const field of ["max_tokens", "max_completion_tokens", "n"] as const) {
    const value = request[field];
    if (value !== undefined && value !== null && !(Number.isSafeInteger(value) && (value as number) > 0)) {
      return { ok: false, message: `\`${field}\` must be a positive integer` };
    }
    if (value === null) delete request[field];
  }
  if (request.stream !== undefined && typeof request.stream !== "boolean") return { ok: false, message: "`stream` must be a boolean" };
  return { ok: true, request: request as ChatRequest };
}
