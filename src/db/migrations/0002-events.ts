/**
 * The /events log: every frame treadle has published to appviews (sh.tangled.pipeline and
 * sh.tangled.pipeline.status), keyed by `created`, the Unix-nanosecond time of the write on the
 * daemon's clock, strictly increasing (it is the cursor appviews resume from). Kept for
 * TREADLE_RETAIN_EVENTS (90 days by default; retention prunes the oldest first).
 */
export const sql = `
CREATE TABLE events (
  created  INTEGER PRIMARY KEY,
  nsid     TEXT    NOT NULL,
  rkey     TEXT    NOT NULL,
  event    TEXT    NOT NULL,
  UNIQUE (nsid, rkey)
);
`;
