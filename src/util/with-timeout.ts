export interface WithTimeoutOptions {
  /**
   * Let the process exit while only this timer is pending (default false). Leave it referenced
   * where the wait itself must keep the process alive (waiting for a child to exit on shutdown).
   */
  unref?: boolean;
}

/**
 * `promise`'s outcome if it settles within `timeoutMs`, else `onTimeout()`'s (return a value to
 * resolve with it, throw to reject). The timer is cleared as soon as either side wins, so nothing
 * lingers after the answer; a late rejection of `promise` is handled here (never unhandled).
 * `promise` itself is not cancelled: the caller stops the work if it must (kill a child, say).
 */
export function withTimeout<T, U = never>(promise: PromiseLike<T>, timeoutMs: number, onTimeout: () => U | PromiseLike<U>, options: WithTimeoutOptions = {}): Promise<T | U> {
  return new Promise<T | U>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      try {
        resolve(onTimeout());
      } catch (error) {
        reject(error);
      }
    }, timeoutMs);
    if (options.unref) timer.unref();
    promise.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
