/**
 * A bounded least-recently-used map: at most `maxEntries` entries and, when `maxBytes` is given, at
 * most that many bytes of entries as `sizeOf` estimates them; the least recently read or written
 * entry is dropped first. Map keeps insertion order, so "recently used" = re-inserted.
 * Used to memoise pure functions (same input, same output), where a bound is the only policy needed.
 *
 * Why bytes too: the caches of the verify path hold strings of a few hundred characters per
 * entry; a count bounds their memory only as well as the longest key allows, a byte budget bounds
 * it whatever the entries' shape (see approximateStringBytes).
 */
export interface LruByteBound<K, V> {
  maxBytes: number;
  /** An estimate of what one entry holds on the heap (key, value, the map's own slot). */
  sizeOf(key: K, value: V): number;
}

interface Entry<V> {
  value: V;
  bytes: number;
}

export class LruCache<K, V> {
  readonly #entries = new Map<K, Entry<V>>();
  readonly #bytesBound: LruByteBound<K, V> | undefined;
  #bytes = 0;

  constructor(
    readonly maxEntries: number,
    bytesBound?: LruByteBound<K, V>,
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError(`LruCache maxEntries must be a positive integer, got ${maxEntries}`);
    if (bytesBound && (!Number.isInteger(bytesBound.maxBytes) || bytesBound.maxBytes < 1)) {
      throw new RangeError(`LruCache maxBytes must be a positive integer, got ${bytesBound.maxBytes}`);
    }
    this.#bytesBound = bytesBound;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The estimated bytes held (0 without a byte bound). */
  get bytes(): number {
    return this.#bytes;
  }

  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  set(key: K, value: V): void {
    this.delete(key);
    const bytes = this.#bytesBound ? this.#bytesBound.sizeOf(key, value) : 0;
    // An entry larger than the whole budget is not kept (it would evict everything else).
    if (this.#bytesBound && bytes > this.#bytesBound.maxBytes) return;
    this.#entries.set(key, { value, bytes });
    this.#bytes += bytes;
    while (this.#entries.size > this.maxEntries || (this.#bytesBound !== undefined && this.#bytes > this.#bytesBound.maxBytes)) this.#dropOldest();
  }

  delete(key: K): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }

  /** Drops least recently used entries while `stale` says so of the oldest, at most `max` of them. */
  dropOldestWhile(stale: (key: K, value: V) => boolean, max = Number.POSITIVE_INFINITY): void {
    for (let dropped = 0; dropped < max; dropped += 1) {
      const oldest = this.#entries.entries().next();
      if (oldest.done || !stale(oldest.value[0], oldest.value[1].value)) return;
      this.delete(oldest.value[0]);
    }
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #dropOldest(): void {
    const oldest = this.#entries.keys().next();
    if (!oldest.done) this.delete(oldest.value);
  }
}

/**
 * Heap bytes of a string, an upper bound: V8's string header and two bytes a character (one-byte
 * strings take half; hex keys are one-byte, so this over-counts them, never under-counts).
 */
export function approximateStringBytes(text: string): number {
  return 16 + 2 * text.length;
}

/** A Map slot (key, value, chain) plus the entry record LruCache keeps per key. */
export const lruEntryOverheadBytes = 64;
