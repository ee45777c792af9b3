export { EventLog, type LoggedEvent, sortedJson } from './event-log.ts';
export { EventsServer, parseCursor } from './events-server.ts';
export { NanoClock, wallClockNs } from './nano-clock.ts';
