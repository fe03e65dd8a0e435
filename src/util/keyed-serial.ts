/**
 * Runs the tasks given for one key one after the other, in the order given; tasks of different
 * keys run concurrently. An idle key holds nothing. Used where each task takes a Postgres
 * connection and then waits on a lock that only one of them can hold at a time (a payer's funds
 * reservation): queued here, the others wait without holding a connection.
 */
export class KeyedSerial {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with a task running or queued (tests, metrics). */
  size(): number {
    return this.tails.size;
  }
}
