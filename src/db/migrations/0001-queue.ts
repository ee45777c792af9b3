/**
 * The durable queue (spec greenness-and-landing §5.1). Immutable once released: change the
 * schema with a new numbered migration.
 *
 * queue_messages is the append-only log; a message stays while any group still has it pending
 * and for the dedup retention after publish. queue_delivery holds one row per (group, message)
 * still to be handled; the row is deleted on ack, so this table only ever holds live work.
 *
 * Every B-tree a publish touches is a page written to the WAL at commit, and that write is most
 * of a publish's cost, so there are as few as the semantics allow: the log (offset = rowid; no
 * AUTOINCREMENT, whose sqlite_sequence row would be one more page; a new offset is still always
 * above every stored one), its dedup key, and the delivery row. There is no index on
 * published_at (offsets grow with time, so garbage collection finds its cut-off by bisection)
 * and none on msg_offset (a delivery is found through its topic and partition). The fan-out to
 * the topic's groups is a trigger, so a single publish is one statement in autocommit mode, and
 * every writer (the daemon, the CLI) fans out the same way.
 */
export const sql = `
CREATE TABLE queue_messages (
  "offset"        INTEGER PRIMARY KEY,
  topic           TEXT    NOT NULL,
  partition_key   TEXT    NOT NULL,
  id              TEXT    NOT NULL,
  payload         TEXT    NOT NULL,
  metadata        TEXT    NOT NULL DEFAULT '{}',
  published_at    INTEGER NOT NULL,
  failed_at       INTEGER,
  failure_count   INTEGER,
  last_error      TEXT,
  original_topic  TEXT,
  UNIQUE (topic, partition_key, id)
);

CREATE TABLE queue_subscriptions (
  topic           TEXT    NOT NULL,
  consumer_group  TEXT    NOT NULL,
  created_at      INTEGER NOT NULL,
  PRIMARY KEY (topic, consumer_group)
) WITHOUT ROWID;

CREATE TABLE queue_delivery (
  consumer_group  TEXT    NOT NULL,
  topic           TEXT    NOT NULL,
  partition_key   TEXT    NOT NULL,
  msg_offset      INTEGER NOT NULL,
  invisible_until INTEGER NOT NULL DEFAULT 0,
  attempt_count   INTEGER NOT NULL DEFAULT 0,
  postponed       INTEGER NOT NULL DEFAULT 0,
  in_flight       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (topic, partition_key, consumer_group, msg_offset)
) WITHOUT ROWID;

CREATE TRIGGER queue_fan_out AFTER INSERT ON queue_messages BEGIN
  INSERT INTO queue_delivery (consumer_group, topic, partition_key, msg_offset)
  SELECT consumer_group, NEW.topic, NEW.partition_key, NEW."offset"
  FROM queue_subscriptions WHERE topic = NEW.topic;
END;

CREATE TABLE instance_lock (
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  token         TEXT    NOT NULL,
  pid           INTEGER NOT NULL,
  host          TEXT    NOT NULL,
  started_at    INTEGER NOT NULL,
  heartbeat_at  INTEGER NOT NULL
);
`;
