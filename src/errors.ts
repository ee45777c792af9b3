/**
 * The typed errors treadle raises. Each has a stable `code`; HTTP/XRPC bodies and queue outcomes
 * are derived from the class in one place each (http/app.ts, queue/consumer.ts).
 */
export class TreadleError extends Error {
  readonly code: string = 'InternalError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A request or input that can never succeed as given. */
export class InvalidRequestError extends TreadleError {
  override readonly code = 'InvalidRequest';
}

/** A change that cannot be applied to its target as asked: unmerged paths, or a promotion that is not a fast-forward. */
export class ConflictError extends TreadleError {
  override readonly code = 'Conflict';
}

/** A request body over its route's bound; it was not read past the bound. */
export class PayloadTooLargeError extends TreadleError {
  override readonly code = 'PayloadTooLarge';
}

export class AuthError extends TreadleError {
  override readonly code = 'AuthRequired';
}

export class NotFoundError extends TreadleError {
  override readonly code = 'NotFound';
}

/** An XRPC method this service does not have. */
export class MethodNotImplementedError extends TreadleError {
  override readonly code = 'MethodNotImplemented';
}

/** An XRPC error with a method-specific name in its body, e.g. `PipelineNotFound`. */
export class XrpcError extends TreadleError {
  readonly status: 400 | 401 | 403 | 404 | 500;
  readonly error: string;
  constructor(status: 400 | 401 | 403 | 404 | 500, error: string, message: string) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

/** A transient failure: the queue retries the message with backoff. */
export class RetryableError extends TreadleError {
  override readonly code = 'Retryable';
}

/** A failure that retrying cannot fix: the queue dead-letters the message at once. */
export class PermanentError extends TreadleError {
  override readonly code = 'Permanent';
}

/** Bad or missing configuration; the message names the variable. */
export class ConfigError extends TreadleError {
  override readonly code = 'ConfigError';
  /** One line per problem, each naming its variable or key. */
  readonly problems: readonly string[];
  constructor(message: string, options?: { cause?: unknown; problems?: readonly string[] }) {
    super(message, options);
    this.problems = options?.problems ?? [message];
  }
}

/** The daemon could not start (for example, its listen address is in use). */
export class StartupError extends TreadleError {
  override readonly code = 'StartupError';
}

/** Another live treadle process already owns this database. */
export class InstanceLockedError extends TreadleError {
  override readonly code = 'InstanceLocked';
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
