/**
 * Greenness (greenness-and-landing spec §3): per queue (a repo and a ref) the next seq, the
 * last green commit and the tip; the pipelines and workflow runs the recorder has observed; one
 * validation per (queue, commit); create-only facts per (queue, commit, project); and the log of
 * green seqs. Pipelines started before this migration never become validations: greenness
 * starts at the first push after the upgrade.
 */
export const sql = `
CREATE TABLE gn_queue (
  key                    TEXT    PRIMARY KEY,
  repo                   TEXT    NOT NULL,
  ref                    TEXT    NOT NULL,
  next_seq               INTEGER NOT NULL DEFAULT 1,
  last_green_seq         INTEGER,
  last_green_commit      TEXT,
  last_green_validation  TEXT,
  last_green_at          INTEGER,
  tip_seq                INTEGER,
  tip_green              INTEGER,
  tip_prev_green         INTEGER
);
CREATE TABLE gn_pipeline (
  pipeline     TEXT    PRIMARY KEY,
  knot         TEXT    NOT NULL,
  repo         TEXT    NOT NULL,
  trigger      TEXT    NOT NULL,
  ref          TEXT,
  commit_sha   TEXT,
  workflows    TEXT    NOT NULL,
  observed_at  INTEGER NOT NULL
);
CREATE TABLE gn_run (
  pipeline   TEXT    NOT NULL,
  workflow   TEXT    NOT NULL,
  status     TEXT    NOT NULL,
  status_at  INTEGER NOT NULL,
  PRIMARY KEY (pipeline, workflow)
) WITHOUT ROWID;
CREATE TABLE gn_validation (
  id           TEXT    PRIMARY KEY,
  queue        TEXT    NOT NULL,
  seq          INTEGER NOT NULL,
  commit_sha   TEXT    NOT NULL,
  pipeline     TEXT    NOT NULL,
  attempt      INTEGER NOT NULL,
  state        TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed', 'cancelled', 'expired')),
  deadline_at  INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  UNIQUE (queue, commit_sha),
  UNIQUE (queue, seq)
);
CREATE INDEX gn_validation_pipeline ON gn_validation (pipeline);
CREATE TABLE gn_fact (
  queue        TEXT    NOT NULL,
  commit_sha   TEXT    NOT NULL,
  project      TEXT    NOT NULL,
  degree       REAL    NOT NULL,
  validation   TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (queue, commit_sha, project)
) WITHOUT ROWID;
CREATE TABLE gn_green_log (
  queue        TEXT    NOT NULL,
  seq          INTEGER NOT NULL,
  commit_sha   TEXT    NOT NULL,
  validation   TEXT    NOT NULL,
  recorded_at  INTEGER NOT NULL,
  PRIMARY KEY (queue, seq)
) WITHOUT ROWID;
`;
