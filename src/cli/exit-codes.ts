/** Process exit codes (sysexits.h where one fits). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** Another treadle holds the database (EX_TEMPFAIL). */
  locked: 75,
  /** Bad or missing configuration (EX_CONFIG). */
  config: 78,
} as const;
