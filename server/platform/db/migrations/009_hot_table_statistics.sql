-- Holds, signed operations and ledger entries only grow (settled holds stay as the record), so the default
-- autovacuum thresholds (a tenth of a table changed before it is analysed, a fifth inserted before it is vacuumed)
-- let the open holds' statistics and visibility fall far behind on a large table: measured on 100,000 open holds
-- (bench/sponsorship.ts), a hold batch's reads cost 45 % more on a table not yet vacuumed and analysed than after.
-- Keep them within 2 % of the table.
ALTER TABLE holds SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE sponsored_operations SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE ledger_entries SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
