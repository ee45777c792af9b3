/**
 * The /events log: every frame treadle has published to appviews (sh.tangled.pipeline and
 * sh.tangled.pipeline.status), keyed by `created`, the Unix-nanosecond time of the write on the
 * daemon's clock, strictly increasing (it is the cursor appviews resume from). Never pruned:
 * a reconnecting consumer may ask for any point in history.
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
