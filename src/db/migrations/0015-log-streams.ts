/**
 * Log lines keyed by a number per workflow log instead of the workflow's (knot, rkey, name) on
 * every row, in a rowid table. Migration 0004's table was `WITHOUT ROWID`: a row lived in an
 * index b-tree page, where SQLite keeps only about a quarter of a 4 KiB page in place, so every
 * line over about 1,000 bytes took an overflow page of its own (4 KiB for a 1.5 KB line). A
 * rowid table keeps a row of up to about 4 KiB in place, and the key columns shrink to two
 * integers. Every stored line is copied, stream by stream in order, so reading a log back
 * walks the new table in the order it was written.
 */
export const sql = `
CREATE TABLE log_streams (
  id        INTEGER PRIMARY KEY,
  knot      TEXT NOT NULL,
  rkey      TEXT NOT NULL,
  workflow  TEXT NOT NULL,
  UNIQUE (knot, rkey, workflow)
);
INSERT INTO log_streams (knot, rkey, workflow)
  SELECT DISTINCT knot, rkey, workflow FROM log_lines ORDER BY knot, rkey, workflow;

CREATE TABLE log_lines_by_stream (
  stream  INTEGER NOT NULL,
  seq     INTEGER NOT NULL,
  line    TEXT    NOT NULL,
  UNIQUE (stream, seq)
);
INSERT INTO log_lines_by_stream (stream, seq, line)
  SELECT s.id, l.seq, l.line
  FROM log_streams s JOIN log_lines l ON l.knot = s.knot AND l.rkey = s.rkey AND l.workflow = s.workflow
  ORDER BY s.id, l.seq;

DROP TABLE log_lines;
ALTER TABLE log_lines_by_stream RENAME TO log_lines;
`;
