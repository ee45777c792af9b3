/**
 * Landing (greenness-and-landing spec §7.5, §7.8): the ledger of merges that pushed, so a
 * redelivered merge republishes its result without pushing again (kept 30 days), and every
 * result published, so the land API can answer for a request and list a target's latest.
 */
export const sql = `
CREATE TABLE land_ledger (
  request_id  TEXT    PRIMARY KEY,
  result      TEXT    NOT NULL,
  created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE land_results (
  request_id  TEXT    NOT NULL,
  kind        TEXT    NOT NULL CHECK (kind IN ('check', 'merge')),
  target      TEXT    NOT NULL,
  outcome     TEXT    NOT NULL CHECK (outcome IN ('SUCCEEDED', 'FAILED')),
  result      TEXT    NOT NULL,
  finished_at INTEGER NOT NULL,
  PRIMARY KEY (request_id, kind)
) WITHOUT ROWID;
CREATE INDEX land_results_target ON land_results (target, finished_at);
`;
