/**
 * Greenness (greenness-and-landing spec §3): per queue (a repo and a ref) the next seq, the
 * last green commit and the tip; the pipelines and workflow runs the recorder has observed; one
 * validation per (queue, commit), keyed by its seq; create-only facts per (queue, seq, project)
 * (seq and commit are one-to-one within a queue, so this is the spec's (queue, commit, project)).
 * A repo's ids (its DID, its <ownerDid>/<name>) are aliases of the id its queues were first
 * keyed by, so a repo that gets a DID keeps its history. Rows refer to queues and pipelines by integer ids: a recorded commit costs under a kilobyte.
 * Pipelines started before this migration never become validations: greenness starts at the
 * first push after the upgrade.
 */
export const sql = `
CREATE TABLE gn_queue (
  id                INTEGER PRIMARY KEY,
  key               TEXT    NOT NULL UNIQUE,
  repo              TEXT    NOT NULL,
  ref               TEXT    NOT NULL,
  next_seq          INTEGER NOT NULL DEFAULT 1,
  last_green_seq    INTEGER,
  last_green_at     INTEGER,
  tip_seq           INTEGER,
  tip_green         INTEGER,
  tip_prev_green    INTEGER,
  required          TEXT,
  promoted_seq      INTEGER
);
CREATE TABLE gn_repo_alias (
  alias  TEXT PRIMARY KEY,
  repo   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE gn_pipeline (
  id           INTEGER PRIMARY KEY,
  uri          TEXT    NOT NULL UNIQUE,
  knot         TEXT    NOT NULL,
  repo         TEXT    NOT NULL,
  trigger      TEXT    NOT NULL,
  ref          TEXT,
  commit_sha   TEXT,
  workflows    TEXT    NOT NULL,
  observed_at  INTEGER NOT NULL
);
CREATE TABLE gn_run (
  pipeline   INTEGER NOT NULL,
  workflow   TEXT    NOT NULL,
  status     TEXT    NOT NULL,
  status_at  INTEGER NOT NULL,
  PRIMARY KEY (pipeline, workflow)
) WITHOUT ROWID;
CREATE TABLE gn_validation (
  queue        INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  commit_sha   TEXT    NOT NULL,
  pipeline     INTEGER NOT NULL,
  attempt      INTEGER NOT NULL,
  state        TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed', 'cancelled', 'expired')),
  deadline_at  INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (queue, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX gn_validation_commit ON gn_validation (queue, commit_sha);
CREATE INDEX gn_validation_pipeline ON gn_validation (pipeline) WHERE state = 'pending';
CREATE TABLE gn_fact (
  queue        INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  project      TEXT    NOT NULL,
  degree       REAL    NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (queue, seq, project)
) WITHOUT ROWID;
CREATE INDEX gn_green ON gn_fact (queue, seq) WHERE project = '' AND degree = 0;
`;
