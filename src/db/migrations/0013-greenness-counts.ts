/**
 * Greenness counts kept on the queue row: how many of a branch's validations are green, not
 * green and pending. They were a scan of every validation of the queue (16 ms at 100,000
 * commits, on every queue listing and branch page); triggers now keep them as validations are
 * inserted and change state, in the same transaction.
 */
const NOT_GREEN = `('failed', 'cancelled', 'expired')`;

export const sql = `
ALTER TABLE gn_queue ADD COLUMN n_green INTEGER NOT NULL DEFAULT 0;
ALTER TABLE gn_queue ADD COLUMN n_not_green INTEGER NOT NULL DEFAULT 0;
ALTER TABLE gn_queue ADD COLUMN n_pending INTEGER NOT NULL DEFAULT 0;
UPDATE gn_queue SET
  n_green = (SELECT count(*) FROM gn_validation v WHERE v.queue = gn_queue.id AND v.state = 'succeeded'),
  n_not_green = (SELECT count(*) FROM gn_validation v WHERE v.queue = gn_queue.id AND v.state IN ${NOT_GREEN}),
  n_pending = (SELECT count(*) FROM gn_validation v WHERE v.queue = gn_queue.id AND v.state = 'pending');
CREATE TRIGGER gn_validation_counted AFTER INSERT ON gn_validation BEGIN
  UPDATE gn_queue SET
    n_green = n_green + (NEW.state = 'succeeded'),
    n_not_green = n_not_green + (NEW.state IN ${NOT_GREEN}),
    n_pending = n_pending + (NEW.state = 'pending')
  WHERE id = NEW.queue;
END;
CREATE TRIGGER gn_validation_recounted AFTER UPDATE OF state ON gn_validation WHEN OLD.state <> NEW.state BEGIN
  UPDATE gn_queue SET
    n_green = n_green + (NEW.state = 'succeeded') - (OLD.state = 'succeeded'),
    n_not_green = n_not_green + (NEW.state IN ${NOT_GREEN}) - (OLD.state IN ${NOT_GREEN}),
    n_pending = n_pending + (NEW.state = 'pending') - (OLD.state = 'pending')
  WHERE id = NEW.queue;
END;
`;
