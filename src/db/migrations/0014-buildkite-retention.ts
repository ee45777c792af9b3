/**
 * Retention of the Buildkite runner's own rows: finished builds are forgotten with the runs
 * window, oldest first, through this partial index (it holds finished builds only, so a prune
 * batch never scans the table and never sees a build still running).
 */
export const sql = `
CREATE INDEX buildkite_builds_finished ON buildkite_builds (created_at) WHERE final IS NOT NULL;
`;
