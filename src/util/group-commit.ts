/**
 * Group commit per key, in this process: at most one `flush` runs per key at a time, and the items
 * that arrive while it runs are handed to the next flush together (up to `itemsPerFlushMax`).
 * Nothing waits for a timer: a lone item flushes at once, and batches form only when items
 * queue behind a running flush (or behind `beforeGroup`) — i.e. exactly when several settlements
 * wait for the same signer.
 * Bounded by its callers: each flush has its own timeouts (Postgres statement timeout, RPC
 * timeouts), so a queue always drains, and each caller holds one in-flight slot of its signer.
 */
export class GroupCommit<Item, Result> {
  private readonly queues = new Map<string, Array<Waiting<Item, Result>>>();

  constructor(
    private readonly itemsPerFlushMax: number,
    /**
     * Answers each item of one group, in order (results.length === items.length). `answerNow`
     * answers an item before the whole flush is done (its later result is then ignored): a flush
     * that sends several transactions answers each one's items as it is sent.
     */
    private readonly flush: (key: string, items: readonly Item[], answerNow: (index: number, result: Result) => void) => Promise<readonly Result[]>,
    /**
     * Awaited before each group is taken from the queue (`next`: its first item), so that what
     * queues meanwhile joins the group: e.g. until the key may send another transaction. Must
     * settle (bounded by its own deadline); a rejection is treated as resolved.
     */
    private readonly beforeGroup?: (key: string, next: Item) => Promise<void>,
  ) {
    if (!Number.isInteger(itemsPerFlushMax) || itemsPerFlushMax < 1) throw new Error(`itemsPerFlushMax must be a positive integer, got ${itemsPerFlushMax}`);
  }

  submit(key: string, item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const queue = this.queues.get(key);
      if (queue) {
        queue.push({ item, resolve, reject });
        return;
      }
      const fresh: Array<Waiting<Item, Result>> = [{ item, resolve, reject }];
      this.queues.set(key, fresh);
      void this.drain(key, fresh);
    });
  }

  /** Items waiting for a flush under `key` (not counting the group being flushed). */
  queued(key: string): number {
    return this.queues.get(key)?.length ?? 0;
  }

  /** Items waiting for a flush, all keys. */
  queuedTotal(): number {
    let total = 0;
    for (const queue of this.queues.values()) total += queue.length;
    return total;
  }

  /** Flushes groups until the key's queue is empty; the queue's presence in the map means "draining". */
  private async drain(key: string, queue: Array<Waiting<Item, Result>>): Promise<void> {
    while (queue.length > 0) {
      if (this.beforeGroup) await this.beforeGroup(key, queue[0]!.item).catch(() => undefined);
      const group = queue.splice(0, this.itemsPerFlushMax);
      try {
        const results = await this.flush(
          key,
          group.map((waiting) => waiting.item),
          // A promise settles once: the flush's final answer for an item answered now changes nothing.
          (index, result) => group[index]?.resolve(result),
        );
        if (results.length !== group.length) throw new Error(`flush answered ${results.length} of ${group.length} items`);
        group.forEach((waiting, index) => waiting.resolve(results[index]!));
      } catch (error) {
        for (const waiting of group) waiting.reject(error);
      }
    }
    this.queues.delete(key);
  }
}

interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}
