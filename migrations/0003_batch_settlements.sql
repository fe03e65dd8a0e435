DROP INDEX "settlements_tx_hash";--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "tx_settlements" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
CREATE INDEX "settlements_tx_hash" ON "settlements" USING btree ("tx_hash") WHERE tx_hash is not null;