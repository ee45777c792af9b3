/**
 * Buildkite builds treadle started, one per workflow run (request id `knot/rkey/workflow`):
 * `creating` is written before the create request, so after a crash or an ambiguous failure the
 * build is looked up by its `treadle:request_id` meta-data before anything is created again.
 * The latest state known (from a webhook or a poll) is kept with its source and time, and the
 * build with its jobs once it is terminal (exit codes, the job list for logs).
 */
export const sql = `
CREATE TABLE buildkite_builds (
  request_id   TEXT    PRIMARY KEY,
  org          TEXT    NOT NULL,
  pipeline     TEXT    NOT NULL,
  phase        TEXT    NOT NULL CHECK (phase IN ('creating', 'created')),
  number       INTEGER,
  build_uuid   TEXT,
  web_url      TEXT,
  state        TEXT,
  blocked      INTEGER NOT NULL DEFAULT 0,
  started_at   TEXT,
  state_at     INTEGER NOT NULL DEFAULT 0,
  checked_at   INTEGER NOT NULL DEFAULT 0,
  final        TEXT,
  created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX buildkite_builds_number ON buildkite_builds (org, pipeline, number);
CREATE INDEX buildkite_builds_uuid ON buildkite_builds (build_uuid);
`;
