/**
 * Pipelines treadle accepted, their workflows (route, build, the last status sent) and the log
 * lines runners produced. Collaborators get an update time, so a backfill removes only records
 * it saw missing and nothing that arrived live while it ran. A pipeline is keyed by where it came from: the knot and the record
 * key of its `sh.tangled.pipeline` event, so a replayed frame finds its row and runs nothing.
 */
export const sql = `
ALTER TABLE collaborators ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;

CREATE TABLE pipelines (
  knot         TEXT    NOT NULL,
  rkey         TEXT    NOT NULL,
  repo_owner   TEXT    NOT NULL,
  repo_name    TEXT    NOT NULL,
  record       TEXT    NOT NULL,
  received_at  INTEGER NOT NULL,
  PRIMARY KEY (knot, rkey)
);

CREATE TABLE workflows (
  knot          TEXT    NOT NULL,
  rkey          TEXT    NOT NULL,
  name          TEXT    NOT NULL,
  engine        TEXT    NOT NULL,
  runner        TEXT,
  options       TEXT    NOT NULL DEFAULT '{}',
  build_id      TEXT,
  status        TEXT,
  status_at     INTEGER,
  error         TEXT,
  exit_code     INTEGER,
  logs_done     INTEGER NOT NULL DEFAULT 0,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (knot, rkey, name)
);
-- Start-up resumes log collection for these; most rows are done, so keep the index to the rest.
CREATE INDEX workflows_logs_open ON workflows (knot) WHERE logs_done = 0;

CREATE TABLE log_lines (
  knot      TEXT    NOT NULL,
  rkey      TEXT    NOT NULL,
  workflow  TEXT    NOT NULL,
  seq       INTEGER NOT NULL,
  line      TEXT    NOT NULL,
  PRIMARY KEY (knot, rkey, workflow, seq)
) WITHOUT ROWID;
`;
