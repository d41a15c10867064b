import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AttemptResult,
  backoffDelay,
  classifyAttempt,
  DEFAULT_BACKOFF,
  EXIT,
  exitCodeFor,
  type Outcome,
  retryUntilFinal,
} from '../../src/report/retry.ts';

const status = (code: number, body: object): AttemptResult => ({
  kind: 'response',
  status: code,
  body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, ...body }),
});

describe('classifyAttempt', () => {
  it.each([200, 201])('%d is applied', (code) => {
    expect(classifyAttempt({ kind: 'response', status: code, body: '{}' })).toEqual({
      kind: 'applied',
      status: code,
    });
  });

  it('takes the CRD transition rule refusal as stale', () => {
    const outcome = classifyAttempt(
      status(422, {
        reason: 'Invalid',
        message:
          'HARouterState.harouter.dev "x.node-a" is invalid: spec.observedAt: Forbidden: stale report: observedAt must not move backwards',
        details: {
          causes: [
            {
              reason: 'FieldValueForbidden',
              field: 'spec.observedAt',
              message: 'Forbidden: stale report: observedAt must not move backwards',
            },
          ],
        },
      }),
    );
    expect(outcome.kind).toBe('stale');
  });

  it('takes the webhook refusal as stale', () => {
    const outcome = classifyAttempt(
      status(403, {
        reason: 'Forbidden',
        message:
          'admission webhook "harouterstates.harouter.dev" denied the request: stale report: observedAt goes backwards',
      }),
    );
    expect(outcome.kind).toBe('stale');
  });

  it('does not take a message merely mentioning the words as stale', () => {
    const outcome = classifyAttempt(
      status(422, { reason: 'Invalid', message: 'spec.message: not a stale reporter' }),
    );
    expect(outcome.kind).toBe('refused');
  });

  it.each([
    [
      403,
      'Forbidden',
      'admission webhook "v" denied the request: node binding: agent node-b is not this pod\'s node',
    ],
    [403, 'Forbidden', 'harouterstates.harouter.dev "x" is forbidden: User "system:anonymous" cannot patch'],
    [422, 'Invalid', 'HARouterState.harouter.dev "x" is invalid: metadata.name: Invalid value'],
    [400, 'BadRequest', 'the body of the request was in an unknown format'],
    [401, 'Unauthorized', 'Unauthorized'],
    [404, 'NotFound', 'the server could not find the requested resource'],
  ])('%d %s is refused with the server reason and message', (code, reason, message) => {
    expect(classifyAttempt(status(code, { reason, message }))).toEqual({
      kind: 'refused',
      status: code,
      reason,
      message,
    });
  });

  it('refuses a field manager conflict and retries an optimistic-concurrency conflict', () => {
    expect(
      classifyAttempt(
        status(409, {
          reason: 'Conflict',
          message: 'Apply failed with 1 conflict',
          details: { causes: [{ type: 'FieldManagerConflict', field: '.spec.state' }] },
        }),
      ).kind,
    ).toBe('refused');
    expect(
      classifyAttempt(
        status(409, {
          reason: 'Conflict',
          message: 'the object has been modified; please apply your changes to the latest version',
        }),
      ).kind,
    ).toBe('transient');
  });

  it.each([408, 429, 500, 502, 503, 504])('%d is transient', (code) => {
    expect(classifyAttempt(status(code, { reason: 'X', message: 'busy' })).kind).toBe('transient');
  });

  it('is transient on network errors and timeouts, and survives a body that is not JSON', () => {
    expect(
      classifyAttempt({ kind: 'network', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }),
    ).toEqual({
      kind: 'transient',
      reason: 'ECONNREFUSED',
      message: 'connect ECONNREFUSED',
    });
    expect(classifyAttempt({ kind: 'response', status: 502, body: '<html>bad gateway</html>' })).toEqual({
      kind: 'transient',
      status: 502,
      reason: 'HTTP502',
      message: '<html>bad gateway</html>',
    });
  });

  it('clips a long server message', () => {
    const outcome = classifyAttempt(status(422, { reason: 'Invalid', message: 'x'.repeat(5000) }));
    expect(outcome.kind === 'refused' && outcome.message.length).toBeLessThan(1100);
  });
});

describe('backoffDelay', () => {
  it('doubles from 200 ms to a 2 s cap with half of it jittered', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, 0.999999))).toEqual([
      200, 400, 800, 1600, 2000, 2000,
    ]);
  });

  it('stays within [ceiling/2, ceiling] for any retry and randomness', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (n, r) => {
          const ceiling = Math.min(DEFAULT_BACKOFF.maxMs, DEFAULT_BACKOFF.initialMs * 2 ** n);
          const delay = backoffDelay(n, r);
          expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
          expect(delay).toBeLessThanOrEqual(ceiling);
        },
      ),
    );
  });
});

/** A fake clock: sleeping advances time, attempts take `attemptMs`. */
function fakeEnv(attemptMs = 0) {
  let now = 0;
  const sleeps: number[] = [];
  return {
    env: {
      now: () => now,
      sleep: async (ms: number) => {
        sleeps.push(ms);
        now += ms;
      },
      random: () => 0.5,
    },
    sleeps,
    advance: () => {
      now += attemptMs;
    },
    time: () => now,
  };
}

const transient: Outcome = { kind: 'transient', reason: 'ECONNREFUSED', message: 'refused' };

describe('retryUntilFinal', () => {
  it('retries transient outcomes until one is final', async () => {
    const fake = fakeEnv();
    const outcomes: Outcome[] = [transient, transient, { kind: 'applied', status: 200 }];
    const result = await retryUntilFinal(
      async () => outcomes.shift() ?? transient,
      { requestTimeoutMs: 1000, deadlineMs: 10_000, maxAttempts: 10 },
      fake.env,
    );
    expect(result).toEqual({ outcome: { kind: 'applied', status: 200 }, attempts: 3, exhausted: false });
    expect(fake.sleeps).toEqual([150, 300]);
  });

  it.each<Outcome>([
    { kind: 'refused', status: 403, reason: 'Forbidden', message: 'denied' },
    { kind: 'stale', status: 422, message: 'stale report: x' },
  ])('never retries a final outcome (%o)', async (final) => {
    const fake = fakeEnv();
    let calls = 0;
    const result = await retryUntilFinal(
      async () => {
        calls++;
        return final;
      },
      { requestTimeoutMs: 1000, deadlineMs: 10_000, maxAttempts: 10 },
      fake.env,
    );
    expect(calls).toBe(1);
    expect(result.outcome).toBe(final);
  });

  it('stops at the attempt limit', async () => {
    const fake = fakeEnv();
    let calls = 0;
    const result = await retryUntilFinal(
      async () => {
        calls++;
        return transient;
      },
      { requestTimeoutMs: 1000, deadlineMs: 1_000_000, maxAttempts: 4 },
      fake.env,
    );
    expect(calls).toBe(4);
    expect(result).toMatchObject({ attempts: 4, exhausted: true });
  });

  it('never waits or sends past the deadline, and each request times out by the deadline', async () => {
    let shrunk = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 1, max: 5_000 }),
        fc.integer({ min: 0, max: 3_000 }),
        async (deadlineMs, requestTimeoutMs, attemptMs) => {
          const fake = fakeEnv(attemptMs);
          const sent: Array<{ at: number; timeoutMs: number }> = [];
          await retryUntilFinal(
            async (timeoutMs) => {
              sent.push({ at: fake.time(), timeoutMs });
              fake.advance();
              return transient;
            },
            { requestTimeoutMs, deadlineMs, maxAttempts: 1000 },
            fake.env,
          );
          expect(sent.length).toBeGreaterThanOrEqual(1);
          for (const { at, timeoutMs } of sent) {
            expect(at).toBeLessThan(deadlineMs);
            // The smaller of the request timeout and the time left when it is sent.
            expect(timeoutMs).toBe(Math.min(requestTimeoutMs, deadlineMs - at));
            if (timeoutMs < requestTimeoutMs) shrunk++;
          }
        },
      ),
      { numRuns: 500 },
    );
    // The generator does produce requests whose timeout the deadline shortens.
    expect(shrunk).toBeGreaterThan(10);
  });
});

describe('exitCodeFor', () => {
  it('maps outcomes to the contract exit codes', () => {
    expect(exitCodeFor({ kind: 'applied', status: 200 })).toBe(EXIT.ok);
    expect(exitCodeFor({ kind: 'stale', status: 422, message: '' })).toBe(0);
    expect(exitCodeFor({ kind: 'refused', status: 403, reason: '', message: '' })).toBe(3);
    expect(exitCodeFor(transient)).toBe(4);
    expect(EXIT.badArguments).toBe(2);
  });
});
