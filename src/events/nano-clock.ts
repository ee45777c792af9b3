/**
 * Unix-nanosecond timestamps for the /events log: the wall clock (appviews compare cursors with
 * their own clocks), made strictly increasing by bumping 1 ns on a tie or a step back.
 */
let baseWall = BigInt(Date.now()) * 1_000_000n;
let baseHr = process.hrtime.bigint();

/**
 * The wall clock in Unix ns: Date.now() for the epoch, the monotonic high-resolution clock for
 * the digits below a millisecond. Re-based whenever the two drift apart by more than 5 ms
 * (the wall clock was stepped), so it follows real time and never jitters within a millisecond.
 */
export function wallClockNs(): bigint {
  const derived = baseWall + (process.hrtime.bigint() - baseHr);
  const wall = BigInt(Date.now()) * 1_000_000n;
  const drift = derived > wall ? derived - wall : wall - derived;
  if (drift <= 5_000_000n) return derived;
  baseWall = wall;
  baseHr = process.hrtime.bigint();
  return wall;
}

export class NanoClock {
  private last: bigint;
  private readonly wall: () => bigint;

  /** `floor`: the highest timestamp already handed out (the newest stored event). */
  constructor(floor = 0n, wall: () => bigint = wallClockNs) {
    this.last = floor;
    this.wall = wall;
  }

  next(): bigint {
    const now = this.wall();
    this.last = now > this.last ? now : this.last + 1n;
    return this.last;
  }

  /**
   * "Now", as a cursor: every later `next()` is above it (so a reader that starts from it
   * misses nothing written afterwards).
   */
  now(): bigint {
    const now = this.wall();
    if (now > this.last) this.last = now;
    return this.last;
  }
}
