/**
 * Concurrent callers of the same key share one in-flight call; the next call after it settles
 * starts a new one. Nothing is cached: every answer is as fresh as a call made when the first of
 * its sharers asked, so it is safe wherever "read it now" is (a burst of settlements asking for
 * the same fees or signer nonce in the same millisecond costs one RPC call, not hundreds).
 */
export class SingleFlight {
  private readonly inFlight = new Map<string, Promise<unknown>>();

  run<T>(key: string, call: () => Promise<T>): Promise<T> {
    const running = this.inFlight.get(key);
    if (running) return running as Promise<T>;
    const started = call().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }

  /** Calls in flight now (bounded by the distinct keys asked at once). */
  get size(): number {
    return this.inFlight.size;
  }
}
