/**
 * Cancellation (2026 spec §2, §3.8): a request to cancel a workflow is recorded on its row
 * before anything else happens, so the dispatcher carries it out even across a restart, and
 * who asked is kept for the log. The partial index serves `treadle runs list --active`.
 */
export const sql = `
ALTER TABLE workflows ADD COLUMN cancel_requested_by TEXT;
ALTER TABLE workflows ADD COLUMN cancel_requested_at INTEGER;
CREATE INDEX workflows_active ON workflows (knot, rkey)
  WHERE status IS NULL OR status IN ('pending', 'running');
`;
