import { DLQ_SUFFIX } from '../db/queue-store.ts';
import { InvalidRequestError } from '../errors.ts';
import type { Metadata, PublishRequest } from './types.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const MAX_KEY_LENGTH = 1024;

/** Topic and consumer-group names: letters, digits, `.`, `_`, `-`; at most 200 characters. */
export function checkName(kind: 'topic' | 'consumer group', name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidRequestError(
      `${kind} ${JSON.stringify(name)} is invalid: use 1–200 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  return name;
}

function checkKey(kind: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidRequestError(
      `${kind} must be a non-empty string, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
  if (value.length > MAX_KEY_LENGTH)
    throw new InvalidRequestError(`${kind} is longer than ${MAX_KEY_LENGTH} characters`);
  return value;
}

/**
 * JSON text of a payload, refusing anything JSON would silently change or drop: undefined,
 * functions, symbols, bigints, non-finite numbers, cycles and non-plain objects (Date, Map …).
 */
export function serializePayload(value: unknown): string {
  checkJsonValue(value, 'payload', new Set());
  return JSON.stringify(value);
}

function checkJsonValue(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new InvalidRequestError(`${path} is ${value}, which JSON cannot represent`);
      return;
    case 'object': {
      if (value === null) return;
      if (seen.has(value)) throw new InvalidRequestError(`${path} refers back to itself (a cycle)`);
      seen.add(value);
      if (Array.isArray(value)) {
        value.forEach((v, i) => {
          checkJsonValue(v, `${path}[${i}]`, seen);
        });
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const name = (value as object).constructor?.name ?? 'object';
          throw new InvalidRequestError(
            `${path} is a ${name}, not a plain object; convert it to JSON data first`,
          );
        }
        for (const [k, v] of Object.entries(value)) checkJsonValue(v, `${path}.${k}`, seen);
      }
      seen.delete(value);
      return;
    }
    default:
      throw new InvalidRequestError(
        `${path} is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}, which is not JSON`,
      );
  }
}

function checkMetadata(metadata: unknown): Metadata {
  if (metadata === undefined) return {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new InvalidRequestError('metadata must be an object of string values');
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new InvalidRequestError(`metadata.${k} must be a string`);
  }
  return metadata as Metadata;
}

export interface CheckedPublish {
  topic: string;
  partitionKey: string;
  id: string;
  payload: string;
  metadata: string;
}

/** Validates and serialises one publish request; throws InvalidRequestError naming the problem. */
export function checkPublish(req: PublishRequest): CheckedPublish {
  const topic = checkName('topic', req.topic);
  if (topic.endsWith(DLQ_SUFFIX)) {
    throw new InvalidRequestError(`topic ${topic} is a dead-letter topic; only dead-lettering writes to it`);
  }
  return {
    topic,
    partitionKey: checkKey('partition key', req.partitionKey),
    id: checkKey('message id', req.id),
    payload: serializePayload(req.payload),
    metadata: JSON.stringify(checkMetadata(req.metadata)),
  };
}
