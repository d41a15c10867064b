import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ManagedProcess } from '../../src/local/controlplane/index.ts';
import { DEFAULT_RESTART_POLICY, restartDecision, supervise } from '../../src/local/supervisor.ts';

const policy = { initialDelayMs: 1000, maxDelayMs: 8000, maxExits: 4, windowMs: 60_000 };

describe('restartDecision', () => {
  it('restarts after a doubling delay, capped, and gives up at maxExits exits within the window', () => {
    expect(restartDecision([0], 0, policy)).toEqual({ restart: true, delayMs: 1000, exitsInWindow: 1 });
    expect(restartDecision([0, 10], 10, policy)).toEqual({ restart: true, delayMs: 2000, exitsInWindow: 2 });
    expect(restartDecision([0, 10, 20], 20, policy)).toEqual({
      restart: true,
      delayMs: 4000,
      exitsInWindow: 3,
    });
    expect(restartDecision([0, 10, 20, 30], 30, policy)).toEqual({ restart: false, exitsInWindow: 4 });
    expect(restartDecision([0], 0, { ...policy, maxDelayMs: 500 })).toMatchObject({ delayMs: 500 });
  });

  it('forgets exits older than the window', () => {
    expect(restartDecision([0, 10, 20, 70_000], 70_000, policy)).toEqual({
      restart: true,
      delayMs: 1000,
      exitsInWindow: 1,
    });
  });

  it('never waits longer than the cap, and always gives up once the window holds maxExits exits', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1_000_000), { minLength: 1, maxLength: 20 }), (times) => {
        const sorted = [...times].sort((a, b) => a - b);
        const now = sorted.at(-1) as number;
        const decision = restartDecision(sorted, now, DEFAULT_RESTART_POLICY);
        const recent = sorted.filter((t) => now - t < DEFAULT_RESTART_POLICY.windowMs).length;
        expect(decision.restart).toBe(recent < DEFAULT_RESTART_POLICY.maxExits);
        if (decision.restart) {
          expect(decision.delayMs).toBeGreaterThanOrEqual(DEFAULT_RESTART_POLICY.initialDelayMs);
          expect(decision.delayMs).toBeLessThanOrEqual(DEFAULT_RESTART_POLICY.maxDelayMs);
        }
      }),
    );
  });
});

/** A process that exits when the test says so. */
function fakeProcess(name: string) {
  let exit: string | undefined;
  let resolveDone: (how: string) => void = () => {};
  const done = new Promise<string>((resolve) => {
    resolveDone = resolve;
  });
  const stops: number[] = [];
  const process: ManagedProcess = {
    name,
    logPath: `/logs/${name}.log`,
    pid: undefined,
    signal: () => {},
    done,
    exited: () => exit,
    async stop() {
      stops.push(Date.now());
      exit ??= 'signal SIGTERM';
      resolveDone(exit);
    },
  };
  return {
    process,
    stops,
    exit(how: string) {
      exit = how;
      resolveDone(how);
    },
  };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('supervise', () => {
  it('restarts a process that exits, says so, and gives up after repeated exits', async () => {
    const fast = { initialDelayMs: 1, maxDelayMs: 4, maxExits: 3, windowMs: 60_000 };
    const started = [fakeProcess('harouter-operator')];
    const lines: string[] = [];
    const supervised = supervise(
      started[0]?.process as ManagedProcess,
      () => {
        const next = fakeProcess('harouter-operator');
        started.push(next);
        return next.process;
      },
      { print: (line) => lines.push(line), policy: fast },
    );
    started[0]?.exit('exit code 1');
    while (started.length < 2) await tick();
    expect(supervised.current()).toBe(started[1]?.process);
    expect(lines[0]).toBe(
      'local: harouter-operator exited unexpectedly (exit code 1; see /logs/harouter-operator.log); restarting it in 0.001 s (restart 1 of at most 2 within 1 min)',
    );
    started[1]?.exit('exit code 2');
    while (started.length < 3) await tick();
    started[2]?.exit('signal SIGKILL');
    const reason = await supervised.gaveUp;
    expect(reason).toBe(
      'harouter-operator exited (signal SIGKILL) 3 times within 1 min; see /logs/harouter-operator.log',
    );
    expect(lines.at(-1)).toBe(`local: ${reason}: not restarting it again`);
    await tick();
    expect(started).toHaveLength(3);
  });

  /** A supervised fake process that counts its restarts. */
  function counted(initialDelayMs: number) {
    const first = fakeProcess('p');
    const counter = { restarts: 0 };
    const supervised = supervise(
      first.process,
      () => {
        counter.restarts++;
        return fakeProcess('p').process;
      },
      { print: () => {}, policy: { ...policy, initialDelayMs } },
    );
    return { first, counter, supervised };
  }

  it('never restarts a process stopped through it', async () => {
    const { first, counter, supervised } = counted(1);
    await supervised.stop();
    await tick();
    await tick();
    expect(first.stops).toHaveLength(1);
    expect(counter.restarts).toBe(0);
  });

  it('cancels a pending restart on stop', async () => {
    const { first, counter, supervised } = counted(50);
    first.exit('exit code 1');
    await tick();
    await supervised.stop();
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(counter.restarts).toBe(0);
  });
});
