/**
 * What discovery learns from the network (spindle protocol §3, with §16.6's fixes) and the
 * stream cursors. Members are the owner's sh.tangled.spindle.member records for this spindle;
 * repos are sh.tangled.repo records naming this spindle, served while their author is the owner
 * or a member; collaborators are sh.tangled.repo.collaborator records, counted only when their
 * author owns the repo they name.
 */
export const sql = `
CREATE TABLE members (
  rkey        TEXT    PRIMARY KEY,
  subject     TEXT    NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX members_subject ON members (subject);

CREATE TABLE repos (
  owner       TEXT    NOT NULL,
  rkey        TEXT    NOT NULL,
  name        TEXT    NOT NULL,
  knot        TEXT    NOT NULL,
  repo_did    TEXT,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (owner, rkey)
);
CREATE INDEX repos_knot ON repos (knot);
CREATE INDEX repos_name ON repos (owner, name);
CREATE UNIQUE INDEX repos_repo_did ON repos (repo_did) WHERE repo_did IS NOT NULL;

CREATE TABLE collaborators (
  author      TEXT    NOT NULL,
  rkey        TEXT    NOT NULL,
  subject     TEXT    NOT NULL,
  repo        TEXT    NOT NULL,
  PRIMARY KEY (author, rkey)
);

CREATE TABLE stream_cursors (
  stream      TEXT    PRIMARY KEY,
  cursor      TEXT    NOT NULL,
  updated_at  INTEGER NOT NULL
);
`;
