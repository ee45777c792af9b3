/**
 * The durable queue (spec greenness-and-landing §5.1). Immutable once released: change the
 * schema with a new numbered migration.
 *
 * queue_messages is the append-only log; a message stays while any group still has it pending
 * and for the dedup retention after publish. queue_delivery holds one row per (group, message)
 * still to be handled; the row is deleted on ack, so this table only ever holds live work.
 */
export const sql = `
CREATE TABLE queue_messages (
  "offset"        INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE INDEX queue_messages_published_at ON queue_messages (published_at);

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
  PRIMARY KEY (consumer_group, topic, partition_key, msg_offset)
) WITHOUT ROWID;
CREATE INDEX queue_delivery_msg_offset ON queue_delivery (msg_offset);

CREATE TABLE instance_lock (
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  token         TEXT    NOT NULL,
  pid           INTEGER NOT NULL,
  host          TEXT    NOT NULL,
  started_at    INTEGER NOT NULL,
  heartbeat_at  INTEGER NOT NULL
);
`;
