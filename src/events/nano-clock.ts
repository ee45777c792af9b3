/**
 * Unix-nanosecond timestamps for the /events log: the wall clock (appviews compare cursors with
 * their own clocks), made strictly increasing by bumping 1 ns on a tie or a step back.
 */
export function wallClockNs(): bigint {
  // Date.now() gives the epoch milliseconds; hrtime supplies the sub-millisecond digits.
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
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

  /** The latest timestamp handed out, or the wall clock if that is later ("now" for a cursor). */
  now(): bigint {
    const now = this.wall();
    return now > this.last ? now : this.last;
  }
}
