-- EIP-2612 permit lanes (review 16 M1): the permits of one owner share the token's nonces(owner), so
-- of several settlements that each carry one, only one can use its permit and the others' transactions
-- revert at our cost. At most one settlement carrying a permit is unfinished per (chain, token, owner),
-- across every instance on this database: the claim of a second is a unique violation of this partial
-- index (answered 429 payer_busy, nothing claimed), and a row frees its lane when it goes final.
-- Every row written before is false (no lane), so the index starts empty and cannot fail to build; the
-- column's constant default needs no table rewrite. CREATE INDEX scans the table once under a SHARE
-- lock (drizzle runs a migration in a transaction, so not CONCURRENTLY): writes wait for the scan.
-- Rolling-safe: an older instance's claims write false and take no lane (it keeps its in-process rule).
ALTER TABLE "settlements" ADD COLUMN "eip2612_permit" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "settlements_eip2612_permit_lane" ON "settlements" USING btree ("chain_id","asset","payer") WHERE eip2612_permit and status in ('claimed', 'signed', 'submitted');
