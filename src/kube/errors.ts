/**
 * Mapping of API errors to safe, structured facts. The operator's own requests
 * throw `KubeRequestError`; client-node's `ApiException` (typed clients in tests
 * and tools) is recognised by its shape, without importing client-node: its
 * `message` embeds the response headers and body, never log it. Parse `body` (the
 * raw response text, or an already-parsed object) into the `metav1.Status` fields.
 */

/** What an API error says, safe to log as fields (no headers, no token, no raw body). */
export interface ApiErrorFacts {
  /** HTTP status code, 0 for errors without a response (network, timeout). */
  status: number;
  /** `metav1.Status.reason` (e.g. NotFound, Conflict, Invalid, Forbidden), or a local reason. */
  reason: string;
  /** `metav1.Status.message`, or a short description of a local error. */
  message: string;
  /** `metav1.Status.details.causes`, when present. */
  causes?: Array<{ reason?: string; message?: string; field?: string }>;
  /**
   * `metav1.Status.details.retryAfterSeconds` (the `Retry-After` the server sent), when
   * positive: how long the server asks clients to wait, e.g. 1 s for a watch cache that
   * is still initializing after a restart (429), 5 s before its paths are installed (503).
   */
  retryAfterSeconds?: number;
}

/** An error thrown by this project's own raw requests (lists, leases): carries the same facts. */
export class KubeRequestError extends Error {
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, body: unknown) {
    super(`kubernetes API request failed with status ${status}`);
    this.name = 'KubeRequestError';
    this.status = status;
    this.body = body;
  }
}

/** client-node's `ApiException`, by shape: an Error with a numeric `code`, a `body` and `headers`. */
function isApiException(err: unknown): err is Error & { code: number; body: unknown } {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'number' &&
    'body' in err &&
    'headers' in err
  );
}

function statusFacts(status: number, body: unknown): ApiErrorFacts {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
  }
  const obj = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const code = typeof obj.code === 'number' && obj.code > 0 ? obj.code : status;
  const reason = typeof obj.reason === 'string' && obj.reason !== '' ? obj.reason : reasonForStatus(code);
  const message = typeof obj.message === 'string' ? obj.message : '';
  const facts: ApiErrorFacts = { status: code, reason, message };
  const details = obj.details as { causes?: unknown; retryAfterSeconds?: unknown } | undefined;
  const retryAfter = details?.retryAfterSeconds;
  if (typeof retryAfter === 'number' && Number.isInteger(retryAfter) && retryAfter > 0) {
    facts.retryAfterSeconds = retryAfter;
  }
  if (details && Array.isArray(details.causes)) {
    facts.causes = details.causes
      .filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null)
      .map((c) => ({
        reason: typeof c.reason === 'string' ? c.reason : undefined,
        message: typeof c.message === 'string' ? c.message : undefined,
        field: typeof c.field === 'string' ? c.field : undefined,
      }));
  }
  return facts;
}

/** The `metav1.StatusReason` Kubernetes uses for a bare HTTP status. */
export function reasonForStatus(status: number): string {
  switch (status) {
    case 400:
      return 'BadRequest';
    case 401:
      return 'Unauthorized';
    case 403:
      return 'Forbidden';
    case 404:
      return 'NotFound';
    case 405:
      return 'MethodNotAllowed';
    case 409:
      return 'Conflict';
    case 410:
      return 'Expired';
    case 415:
      return 'UnsupportedMediaType';
    case 422:
      return 'Invalid';
    case 429:
      return 'TooManyRequests';
    case 500:
      return 'InternalError';
    case 503:
      return 'ServiceUnavailable';
    case 504:
      return 'Timeout';
    default:
      return status === 0 ? 'Unknown' : `HTTP${status}`;
  }
}

/** Structured, log-safe facts about any error thrown by an API call. */
export function apiErrorFacts(err: unknown): ApiErrorFacts {
  if (isApiException(err)) return statusFacts(err.code, err.body);
  if (err instanceof KubeRequestError) return statusFacts(err.status, err.body);
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return { status: 0, reason: 'Timeout', message: 'request timed out' };
    if (err.name === 'AbortError') return { status: 0, reason: 'Aborted', message: 'request aborted' };
    const statusCode = (err as { statusCode?: unknown }).statusCode;
    if (typeof statusCode === 'number') return statusFacts(statusCode, undefined);
    const code = (err as { code?: unknown }).code;
    const cause = (err as { cause?: { code?: unknown; name?: unknown } }).cause;
    const netCode =
      typeof code === 'string' ? code : typeof cause?.code === 'string' ? cause.code : undefined;
    if (cause?.name === 'TimeoutError') return { status: 0, reason: 'Timeout', message: 'request timed out' };
    return { status: 0, reason: netCode ?? err.name, message: err.name };
  }
  return { status: 0, reason: 'Unknown', message: typeof err };
}

/** HTTP status of an API error, 0 when there was no response. */
export function errorStatus(err: unknown): number {
  return apiErrorFacts(err).status;
}

/** The object (or its namespace) does not exist: 404. */
export const isNotFound = (err: unknown): boolean => errorStatus(err) === 404;
/** 409: a stale resourceVersion, a failed precondition, or AlreadyExists. */
export const isConflict = (err: unknown): boolean => errorStatus(err) === 409;
/** A create refused because the name is taken (409 with reason AlreadyExists, not a write conflict). */
export const isAlreadyExists = (err: unknown): boolean =>
  errorStatus(err) === 409 && apiErrorFacts(err).reason === 'AlreadyExists';
/** Whether an error is worth retrying (no response, throttling, server-side or timeout). */
export function isTransient(err: unknown): boolean {
  const status = errorStatus(err);
  return status === 0 || status === 429 || status >= 500;
}

/**
 * Log-safe description of any error, for a pino field: API errors as their
 * parsed Status facts (never an ApiException's message, which embeds headers
 * and body), other errors as name, message and stack.
 */
export function describeError(err: unknown): Record<string, unknown> {
  if (isApiException(err) || err instanceof KubeRequestError) return { ...apiErrorFacts(err) };
  const facts = apiErrorFacts(err);
  if (facts.status !== 0) return { ...facts };
  if (err instanceof Error)
    return { name: err.name, reason: facts.reason, message: err.message, stack: err.stack };
  return { ...facts };
}
