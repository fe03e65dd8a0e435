import { setFlagsFromString } from "node:v8";

/**
 * How far V8 lets the heap grow past what was live at its last full collection, for the server
 * process (HEAP_GROWTH_PERCENT; V8's --heap-growing-percent, which V8 reads each time it sets the
 * next limit, so setting it at start takes effect).
 *
 * Why: left to itself, V8 picks the factor from the allocation rate and GC speed, up to 4× the live
 * heap. Under verify load the facilitator allocates fast (request bodies, hex strings, ABI
 * encoding) while what stays live is small (~45 MB measured: modules, caches, connections), so
 * V8 chose to let ~100 MB of garbage pile up before a full collection: the process peaked at
 * ~230 MB RSS in the bench for a ~45 MB live heap. At 50 % it peaks ~60 MB lower for the same CPU
 * per request (full collections are incremental and concurrent, and a smaller heap is quicker to
 * mark). `0` leaves V8's own choice. Set once per process; the last call wins.
 */
export function applyHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${Math.round(percent)}`);
}
