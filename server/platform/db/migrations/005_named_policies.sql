-- A key may carry named policies, selected by the ERC-7677 context (sponsorshipPolicyId / policyId). A hold
-- remembers which one judged it (NULL: the key's default policy), so each policy's spend limits count only what
-- was sponsored under it.
ALTER TABLE holds ADD COLUMN policy_id text;
