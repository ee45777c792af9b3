/**
 * Repository secrets (spindle protocol §10.3–10.5, §12): keyed by the repo DID when the repo
 * has one, else by `<ownerDid>/<name>`. Values are sealed with AES-256-GCM (secrets/keyring.ts):
 * `sealed` is nonce | ciphertext | tag, `key_id` names the key that sealed it; no plaintext.
 */
export const sql = `
CREATE TABLE secrets (
  repo        TEXT NOT NULL,
  key         TEXT NOT NULL,
  key_id      TEXT NOT NULL,
  sealed      BLOB NOT NULL,
  created_at  TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  PRIMARY KEY (repo, key)
) WITHOUT ROWID;
`;
