import { Counter, type Registry } from "prom-client";
import type { Limits } from "../config.js";
import { bazaarAcceptsPerEntryMax, bazaarPurgeBatchMax, bazaarQueueMax, bazaarValidationTimeoutMs } from "../limits.js";
import type { PaymentRequest } from "../protocol/types.js";
import { redactedFirstLine } from "../redact.js";
import type { Logger } from "../settlement/engine.js";
import type { BazaarRepository } from "../store/bazaar-repo.js";
import { extractBazaarEntry } from "./extract.js";
import { SchemaValidator } from "./schema-validator.js";

/**
 * What became of a settlement's `bazaar` extension (x402_bazaar_catalogue_total{outcome}):
 * catalogued (a new entry; evictions are logged), refreshed (a known entry), or skipped — malformed
 * (shape, routeTemplate-independent rules, resource URL), too_large, invalid (info does not match its
 * schema), timeout (validation took too long), full (BAZAAR_ENTRIES_MAX), dropped (the queue was
 * full or the facilitator stopping), error (Postgres or the validation worker failed).
 */
export type CatalogueOutcome = "catalogued" | "refreshed" | "malformed" | "too_large" | "invalid" | "timeout" | "full" | "dropped" | "error";

export interface CataloguerDeps {
  repo: BazaarRepository;
  limits: Pick<Limits, "bazaarEntriesMax" | "bazaarEntriesPerPayToMax" | "bazaarEntryMaxBytes" | "bazaarEntryTtlMs">;
  log: Logger;
  registry: Registry;
}

interface Job {
  body: unknown;
  payment: PaymentRequest;
}

/**
 * Catalogues the `bazaar` extension of successful settlements (README "Discovery (Bazaar)"), after
 * the payment is answered and apart from it: `offer` only queues (bounded, synchronous, never
 * throws), one job at a time runs later. Whatever the extension holds and whatever Postgres does,
 * the payment's answer is the same; a skipped extension is counted and logged, nothing more.
 */
export class BazaarCataloguer {
  private readonly queue: Job[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  private readonly validator = new SchemaValidator(bazaarValidationTimeoutMs);
  private readonly outcomes: Counter<"outcome">;

  constructor(private readonly deps: CataloguerDeps) {
    const name = "x402_bazaar_catalogue_total";
    // One per registry: Services built twice on one Metrics (tests) share the counter.
    this.outcomes =
      (deps.registry.getSingleMetric(name) as Counter<"outcome"> | undefined) ??
      new Counter({ name, help: "Bazaar extensions of successful settlements, by what became of them (catalogued, refreshed, or why skipped)", labelNames: ["outcome"], registers: [deps.registry] });
  }

  get enabled(): boolean {
    return this.deps.limits.bazaarEntriesMax > 0;
  }

  /** Queues the settled payment's bazaar extension, if it has one. Synchronous, bounded, never throws. */
  offer(body: unknown, payment: PaymentRequest): void {
    try {
      if (!this.enabled || payment.x402Version !== 2) return;
      const extensions = (body as { paymentPayload?: { extensions?: unknown } } | undefined)?.paymentPayload?.extensions;
      if (typeof extensions !== "object" || extensions === null || !("bazaar" in extensions)) return;
      if (this.closed || this.queue.length >= bazaarQueueMax) {
        this.count("dropped", { payTo: payment.requirements.payTo }, "bazaar catalogue queue full: extension not catalogued");
        return;
      }
      this.queue.push({ body, payment });
      if (!this.running) this.running = new Promise((resolve) => setImmediate(resolve)).then(() => this.drain());
    } catch (error) {
      this.deps.log.warn({ err: error }, "bazaar extension not queued");
    }
  }

  /** Resolves once every queued job is done (tests; shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Finishes the job under way, drops the queued ones (counted), stops the validation worker. */
  async close(): Promise<void> {
    this.closed = true;
    const dropped = this.queue.splice(0, this.queue.length);
    if (dropped.length > 0) this.outcomes.inc({ outcome: "dropped" }, dropped.length);
    await this.idle();
    await this.validator.close();
  }

  private async drain(): Promise<void> {
    try {
      for (let job = this.queue.shift(); job; job = this.queue.shift()) await this.catalogue(job);
    } finally {
      this.running = undefined;
    }
  }

  private async catalogue({ body, payment }: Job): Promise<void> {
    const { limits, log } = this.deps;
    const context = { payTo: payment.requirements.payTo, network: payment.requirements.network };
    try {
      const extraction = extractBazaarEntry(body, payment, limits.bazaarEntryMaxBytes);
      if (!extraction.ok) {
        if (extraction.reason !== "absent") this.count(extraction.reason, context, extraction.message);
        return;
      }
      const { entry } = extraction;
      const where = { ...context, resource: entry.resource, action: entry.action };
      const verdict = await this.validator.validate(extraction.infoJson, extraction.schemaJson);
      if (!verdict.valid) {
        this.count(verdict.reason === "unavailable" ? "error" : verdict.reason, where, `info does not validate against its schema: ${verdict.message}`);
        return;
      }
      const written = await this.deps.repo.write(entry, {
        entriesMax: limits.bazaarEntriesMax,
        entriesPerPayToMax: limits.bazaarEntriesPerPayToMax,
        ttlMs: limits.bazaarEntryTtlMs,
        acceptsPerEntryMax: bazaarAcceptsPerEntryMax,
        purgeBatchMax: bazaarPurgeBatchMax,
      });
      if (written.kind === "full") {
        this.count("full", where, "bazaar catalogue full (BAZAAR_ENTRIES_MAX): new resource not catalogued");
        return;
      }
      this.outcomes.inc({ outcome: written.kind });
      if (written.kind === "catalogued" && written.evicted > 0) log.info({ ...where, evicted: written.evicted }, "bazaar: payTo at BAZAAR_ENTRIES_PER_PAY_TO_MAX, least recently paid entry evicted");
    } catch (error) {
      this.outcomes.inc({ outcome: "error" });
      log.warn({ ...context, error: redactedFirstLine(error) }, "bazaar extension not catalogued");
    }
  }

  private count(outcome: CatalogueOutcome, context: object, message: string): void {
    this.outcomes.inc({ outcome });
    this.deps.log.info({ ...context, outcome, reason: message.slice(0, 300) }, "bazaar extension skipped");
  }
}
