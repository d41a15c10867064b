import type { ManagedProcess } from './controlplane/index.ts';

/** When local mode restarts a process that exited on its own, and when it gives up. */
export interface RestartPolicy {
  /** Delay before the first restart; doubled for each further exit in the window. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** Exits within `windowMs` after which local mode stops instead of restarting. */
  maxExits: number;
  windowMs: number;
}

/** What a cluster would do, roughly (a Pod's restart backoff), with a limit so a broken build stops. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  maxExits: 5,
  windowMs: 5 * 60_000,
};

/** The decision after an exit. */
export type RestartDecision =
  | { restart: true; delayMs: number; exitsInWindow: number }
  | { restart: false; exitsInWindow: number };

/**
 * Decides after an exit at `nowMs`, given the times of every exit so far (this one
 * included): restart after a doubling delay, or give up once `maxExits` exits fall
 * within the window. Pure.
 */
export function restartDecision(
  exitTimesMs: readonly number[],
  nowMs: number,
  policy: RestartPolicy,
): RestartDecision {
  const exitsInWindow = exitTimesMs.filter((t) => nowMs - t < policy.windowMs).length;
  if (exitsInWindow >= policy.maxExits) return { restart: false, exitsInWindow };
  const delayMs = Math.min(policy.initialDelayMs * 2 ** Math.max(0, exitsInWindow - 1), policy.maxDelayMs);
  return { restart: true, delayMs, exitsInWindow };
}

/** A process kept running by {@link supervise}. */
export interface Supervised {
  /** The process running now (or the last one, once given up or stopped). */
  current(): ManagedProcess;
  /** Resolves when supervision gives up (repeated exits), with the last exit and why. */
  readonly gaveUp: Promise<string>;
  /** Stops the process and any pending restart. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Watches a running process and starts it again with `restart` when it exits on its
 * own, after the policy's delay, saying so through `print` each time; gives up after
 * repeated exits (see {@link restartDecision}). A process stopped through `stop` is
 * never restarted.
 */
export function supervise(
  first: ManagedProcess,
  restart: () => ManagedProcess,
  options: { print: (line: string) => void; policy?: RestartPolicy; now?: () => number },
): Supervised {
  const policy = options.policy ?? DEFAULT_RESTART_POLICY;
  const now = options.now ?? Date.now;
  const exits: number[] = [];
  let running = first;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let giveUp: (reason: string) => void = () => {};
  const gaveUp = new Promise<string>((resolve) => {
    giveUp = resolve;
  });

  const watch = (process: ManagedProcess) => {
    void process.done.then((exit) => {
      if (stopped || process !== running) return;
      exits.push(now());
      const decision = restartDecision(exits, now(), policy);
      if (!decision.restart) {
        const reason = `${process.name} exited (${exit}) ${decision.exitsInWindow} times within ${policy.windowMs / 60_000} min; see ${process.logPath}`;
        options.print(`local: ${reason}: not restarting it again`);
        giveUp(reason);
        return;
      }
      options.print(
        `local: ${process.name} exited unexpectedly (${exit}; see ${process.logPath}); restarting it in ${decision.delayMs / 1000} s (restart ${decision.exitsInWindow} of at most ${policy.maxExits - 1} within ${policy.windowMs / 60_000} min)`,
      );
      timer = setTimeout(() => {
        timer = undefined;
        if (stopped) return;
        running = restart();
        watch(running);
      }, decision.delayMs);
    });
  };
  watch(first);

  return {
    current: () => running,
    gaveUp,
    async stop(graceMs?: number) {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running.stop(graceMs);
    },
  };
}
