/**
 * What one apply attempt came to, and the bounded, jittered retry loop around
 * it. Pure: the loop takes its clock, sleep, randomness and attempt as inputs.
 */

/** The raw result of one HTTP attempt: an answer from the server or a transport failure. */
export type AttemptResult =
  | { kind: 'response'; status: number; body: string }
  | { kind: 'network'; code: string; message: string };

/** What an attempt means for the report. */
export type Outcome =
  | { kind: 'applied'; status: number }
  /** The server kept a newer report: success for the caller. */
  | { kind: 'stale'; status: number; message: string }
  /** Refused for good (denied, invalid, not found, conflict on a field): never retried. */
  | { kind: 'refused'; status: number; reason: string; message: string }
  /** Worth another try: network, timeout, 429, 5xx, 409 from optimistic concurrency. */
  | { kind: 'transient'; status?: number; reason: string; message: string };

interface StatusBody {
  reason?: string;
  message?: string;
  details?: { causes?: { type?: string; message?: string; field?: string }[] };
}

function parseStatus(body: string): StatusBody {
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === 'object' ? (parsed as StatusBody) : {};
  } catch {
    return {};
  }
}

/** The longest server text kept (a message is printed, never trusted to be short). */
const MAX_MESSAGE = 1024;

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}...` : text;
}

/**
 * True when the refusal says the server holds a newer report: the CRD's
 * transition rule and the webhook both answer with a message that begins
 * `stale report` (the API server prefixes it with the field path, as in
 * `spec.observedAt: Forbidden: stale report: ...`, and the webhook's with
 * `admission webhook "..." denied the request: `).
 */
export function isStaleReport(status: StatusBody): boolean {
  const starts = (text: string | undefined) => text !== undefined && /(^|: )stale report\b/.test(text);
  return starts(status.message) || (status.details?.causes ?? []).some((cause) => starts(cause.message));
}

const TRANSIENT_STATUS = new Set([408, 429]);

/** Classifies one attempt (see {@link Outcome}). */
export function classifyAttempt(result: AttemptResult): Outcome {
  if (result.kind === 'network') {
    return { kind: 'transient', reason: result.code, message: clip(result.message) };
  }
  const { status } = result;
  if (status >= 200 && status < 300) return { kind: 'applied', status };
  const body = parseStatus(result.body);
  const reason = typeof body.reason === 'string' && body.reason ? body.reason : `HTTP${status}`;
  const message = clip(typeof body.message === 'string' ? body.message : result.body.trim());
  if ((status === 400 || status === 403 || status === 422) && isStaleReport(body)) {
    return { kind: 'stale', status, message };
  }
  if (status === 409) {
    // A conflict between field managers is a decision, not a race: never retried.
    // Any other 409 is optimistic concurrency (or a create racing another): retried.
    const fieldConflict = (body.details?.causes ?? []).some((cause) => cause.type === 'FieldManagerConflict');
    return fieldConflict
      ? { kind: 'refused', status, reason, message }
      : { kind: 'transient', status, reason, message };
  }
  if (status >= 500 || TRANSIENT_STATUS.has(status)) return { kind: 'transient', status, reason, message };
  return { kind: 'refused', status, reason, message };
}

/** Exponential backoff with "equal jitter": half fixed, half random, capped. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
}

/** 200 ms doubling to 2 s, as `harouterctl report --help` and docs/harouterctl.md say. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 2000, factor: 2 };

/** The delay before retry number `retry` (0 for the first retry); `random` in [0, 1). */
export function backoffDelay(retry: number, random: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.factor ** retry);
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

/** Limits of the retry loop. */
export interface RetryLimits {
  /** Longest single request, in ms. */
  requestTimeoutMs: number;
  /** The whole report, every attempt and wait included, in ms. */
  deadlineMs: number;
  /** Most attempts, the first included. */
  maxAttempts: number;
  backoff?: BackoffPolicy;
}

/** Effects the loop needs, injected so that it can be tested without waiting. */
export interface RetryEnv {
  /** Milliseconds from any fixed origin (monotonic). */
  now(): number;
  sleep(ms: number): Promise<void>;
  random(): number;
}

/** The loop's result: the last outcome, how many attempts it took, and why it stopped. */
export interface RetryResult {
  outcome: Outcome;
  attempts: number;
  /** True when the loop gave up on a transient outcome (deadline or attempts exhausted). */
  exhausted: boolean;
}

/**
 * Runs `attempt` until an outcome is final (applied, stale, refused), the
 * attempts are used up, or the deadline would pass. Each attempt gets the
 * smaller of the request timeout and the time left; a wait that would end past
 * the deadline is not started.
 */
export async function retryUntilFinal(
  attempt: (timeoutMs: number, attemptNumber: number) => Promise<Outcome>,
  limits: RetryLimits,
  env: RetryEnv,
  onRetry?: (outcome: Outcome, attemptNumber: number, delayMs: number) => void,
): Promise<RetryResult> {
  const start = env.now();
  const end = start + limits.deadlineMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    const left = end - env.now();
    const outcome = await attempt(Math.max(1, Math.min(limits.requestTimeoutMs, left)), attempts);
    if (outcome.kind !== 'transient') return { outcome, attempts, exhausted: false };
    if (attempts >= limits.maxAttempts) return { outcome, attempts, exhausted: true };
    const delay = backoffDelay(attempts - 1, env.random(), limits.backoff);
    if (env.now() + delay >= end) return { outcome, attempts, exhausted: true };
    onRetry?.(outcome, attempts, delay);
    await env.sleep(delay);
  }
}

/** The process exit codes of `harouterctl report` (API.md, "Programs"). */
export const EXIT = {
  ok: 0,
  badArguments: 2,
  refused: 3,
  transient: 4,
} as const;

/** The exit code for the loop's final outcome. */
export function exitCodeFor(outcome: Outcome): number {
  switch (outcome.kind) {
    case 'applied':
    case 'stale':
      return EXIT.ok;
    case 'refused':
      return EXIT.refused;
    case 'transient':
      return EXIT.transient;
  }
}
