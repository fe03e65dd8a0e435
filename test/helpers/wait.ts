/**
 * Polls `probe` until it returns something other than undefined/false, at most `timeoutMs`;
 * throws naming `what` otherwise. Every wait in a test has a bound.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const untilMs = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > untilMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Awaits `promise`, failing with a message naming `what` if it has not settled after `boundMs`.
 * For the few tests whose point is that an answer comes at all (a budget or timeout fired instead of
 * hanging): give `boundMs` as a generous multiple of the bound under test, so a loaded machine never
 * trips it and only a hang (or a bound ignored outright) does. Order and outcome carry the rest.
 */
export async function within<T>(what: string, promise: Promise<T>, boundMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${boundMs} ms`)), boundMs);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
