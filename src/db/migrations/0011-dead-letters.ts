/**
 * Counting dead letters (`treadle queue stats`, every `/metrics` scrape) without reading the
 * whole message log: a partial index holds only the dead letters, so publishing a normal message
 * (whose `original_topic` is NULL) writes nothing more.
 */
export const sql = `
CREATE INDEX queue_messages_dead ON queue_messages (original_topic) WHERE original_topic IS NOT NULL;
`;
