/**
 * Retention: the indexes pruning walks so it never scans a whole table. A pipeline's age is its
 * `received_at`; a workflow's log lines go once its logs are complete and old, and the workflow
 * remembers that (`logs_pruned`), so the partial index only ever holds workflows still to prune.
 */
export const sql = `
CREATE INDEX pipelines_received ON pipelines (received_at);
ALTER TABLE workflows ADD COLUMN logs_pruned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX workflows_logs_prunable ON workflows (updated_at) WHERE logs_done = 1 AND logs_pruned = 0;
`;
