/**
 * Spindle-created pipelines and the sh.tangled.ci API (2026 spec §3, §4).
 *
 * Pipelines gain what the ci API filters and pages on: the repo DID, the trigger kind, the commit
 * the run used, and `created` (the ns of its `sh.tangled.pipeline` event, the page cursor);
 * `origin` says whether a knot sent it or treadle built it. Workflows remember when they started
 * and finished. `run_keys` is the push/PR dedup of §4.5 ("run" = a pipeline runs under it;
 * "lent" = a new-generation knot's pipeline waits for the self-created one to take its rkey).
 * `knot_modes` remembers which knots send new-shape ref updates, and whether they also send
 * pipelines.
 */
export const sql = `
ALTER TABLE pipelines ADD COLUMN repo_did TEXT;
ALTER TABLE pipelines ADD COLUMN kind TEXT NOT NULL DEFAULT 'push';
ALTER TABLE pipelines ADD COLUMN commit_sha TEXT;
ALTER TABLE pipelines ADD COLUMN created INTEGER;
ALTER TABLE pipelines ADD COLUMN origin TEXT NOT NULL DEFAULT 'knot';

UPDATE pipelines SET
  kind = coalesce(json_extract(record, '$.triggerMetadata.kind'), 'push'),
  commit_sha = coalesce(json_extract(record, '$.triggerMetadata.push.newSha'),
                        json_extract(record, '$.triggerMetadata.pullRequest.sourceSha')),
  created = (SELECT created FROM events WHERE nsid = 'sh.tangled.pipeline' AND events.rkey = pipelines.rkey),
  repo_did = (SELECT repo_did FROM repos WHERE repos.owner = pipelines.repo_owner
                AND repos.name = pipelines.repo_name AND repos.knot = pipelines.knot);
UPDATE pipelines SET created = received_at * 1000000 WHERE created IS NULL;

-- (repo, created, kind) answers a page and its total from the index alone, with or without kinds.
CREATE INDEX pipelines_repo ON pipelines (repo_did, created, kind);
CREATE INDEX pipelines_commit ON pipelines (repo_did, commit_sha, created);
CREATE INDEX pipelines_tid ON pipelines (rkey);

-- Totals for queryPipelines without a commits filter, kept by triggers: counting a busy repo's
-- rows on every call would cost milliseconds per 100,000 pipelines.
CREATE TABLE pipeline_counts (
  repo_did  TEXT    NOT NULL,
  kind      TEXT    NOT NULL,
  n         INTEGER NOT NULL,
  PRIMARY KEY (repo_did, kind)
) WITHOUT ROWID;
INSERT INTO pipeline_counts (repo_did, kind, n)
  SELECT repo_did, kind, count(*) FROM pipelines WHERE repo_did IS NOT NULL GROUP BY repo_did, kind;
CREATE TRIGGER pipeline_counts_insert AFTER INSERT ON pipelines WHEN new.repo_did IS NOT NULL BEGIN
  INSERT INTO pipeline_counts (repo_did, kind, n) VALUES (new.repo_did, new.kind, 1)
    ON CONFLICT (repo_did, kind) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER pipeline_counts_delete AFTER DELETE ON pipelines WHEN old.repo_did IS NOT NULL BEGIN
  UPDATE pipeline_counts SET n = n - 1 WHERE repo_did = old.repo_did AND kind = old.kind;
END;
CREATE TRIGGER pipeline_counts_update AFTER UPDATE OF repo_did, kind ON pipelines BEGIN
  UPDATE pipeline_counts SET n = n - 1 WHERE repo_did = old.repo_did AND kind = old.kind;
  INSERT INTO pipeline_counts (repo_did, kind, n) SELECT new.repo_did, new.kind, 1 WHERE new.repo_did IS NOT NULL
    ON CONFLICT (repo_did, kind) DO UPDATE SET n = n + 1;
END;

ALTER TABLE workflows ADD COLUMN started_at INTEGER;
ALTER TABLE workflows ADD COLUMN finished_at INTEGER;

CREATE TABLE run_keys (
  key         TEXT    PRIMARY KEY,
  state       TEXT    NOT NULL CHECK (state IN ('run', 'lent')),
  knot        TEXT    NOT NULL,
  rkey        TEXT    NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX run_keys_age ON run_keys (created_at);

CREATE TABLE knot_modes (
  knot             TEXT    PRIMARY KEY,
  mode             TEXT    NOT NULL CHECK (mode IN ('legacy', 'new')),
  sends_pipelines  INTEGER,
  updated_at       INTEGER NOT NULL
);
`;
