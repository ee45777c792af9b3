import { sql as queue } from './0001-queue.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in order. Append only; never edit a released entry. */
export const MIGRATIONS: readonly Migration[] = [{ version: 1, name: 'queue', sql: queue }];
