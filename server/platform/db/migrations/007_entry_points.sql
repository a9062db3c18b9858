-- A chain may serve EntryPoint v0.7, v0.8 and v0.9 at once, each with its own paymaster and its own nonces: the
-- same (sender, nonce) can land once on each EntryPoint. A hold therefore belongs to one (chain, entry point), and
-- only one is open per (chain, entry point, sender, nonce) — one per chain would let two EntryPoints' operations
-- share a hold sized for one. Settlements record the EntryPoint whose UserOperationEvent they charge. Rows from
-- before (only v0.7 was served) get the canonical v0.7 address. Entry points are stored lower-case.
ALTER TABLE holds ADD COLUMN entry_point text NOT NULL DEFAULT '0x0000000071727de22e5e9d8baf0edac6f37da032';
ALTER TABLE holds ALTER COLUMN entry_point DROP DEFAULT;
DROP INDEX holds_one_open;
CREATE UNIQUE INDEX holds_one_open ON holds (chain_id, entry_point, account, nonce) WHERE status = 'open';

ALTER TABLE settlements ADD COLUMN entry_point text NOT NULL DEFAULT '0x0000000071727de22e5e9d8baf0edac6f37da032';
ALTER TABLE settlements ALTER COLUMN entry_point DROP DEFAULT;
