-- Funds reservations (review 16, attack 1 and its re-review): a payer's concurrent payments each pass
-- their simulation alone at `latest`, so together they could need more than its balance (or its
-- allowance to Permit2) and all but the first revert at our cost. Before a settlement is sent its
-- value is reserved against the payer's funds under a per-(chain, token, payer) advisory lock: the
-- unfinished rows already reserved are summed through this partial index, and the row is marked.
-- Every row written before is false (not counted), so the index starts empty; the constant default
-- needs no table rewrite; CREATE INDEX scans the table once under a SHARE lock (writes wait for it).
-- Rolling-safe: an older instance reserves nothing, so its settlements are not counted until it stops.
ALTER TABLE "settlements" ADD COLUMN "funds_reserved" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "settlements_funds_reserved" ON "settlements" USING btree ("chain_id","asset","payer") WHERE funds_reserved and status in ('claimed', 'signed', 'submitted');