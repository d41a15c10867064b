/**
 * Lease-based leader election with client-go's semantics
 * (`tools/leaderelection`), on a `coordination.k8s.io/v1` Lease:
 *
 * - acquire: every `retryPeriod` (+ up to 1.2x jitter), read the Lease; take it
 *   when it does not exist, has no holder, or has not changed for
 *   `leaseDuration` as measured by *this* process's clock since it last saw it
 *   change (never by comparing the remote `renewTime` with the local clock);
 * - renew: every `retryPeriod`; a renewal that has not succeeded within
 *   `renewDeadline` loses leadership (`onStoppedLeading`, and `run` returns:
 *   the process should exit, as controller-runtime does);
 * - release (on shutdown): clear the holder, so a follower takes over at its
 *   next retry instead of waiting for the lease to expire;
 * - writes are optimistic (resourceVersion), so two candidates never both win;
 * - Lease times are MicroTime with exactly six fractional digits;
 * - `leader_election_master_status{name}` is 1 while leading.
 *
 * Defaults are client-go's: 15 s lease, 10 s renew deadline, 2 s retry.
 */

import { formatMicroTime } from '../api/index.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { sleep } from '../runtime/backoff.ts';
import type { RawRequester } from './client.ts';
import { describeError, isConflict, isNotFound } from './errors.ts';

/** client-go's defaults (the contract): how long a Lease is valid after the last renewal seen. */
export const LEASE_DURATION_MS = 15_000;
/** How long the leader keeps trying to renew before it gives up leading. */
export const RENEW_DEADLINE_MS = 10_000;
/** Interval between acquire and renew attempts. */
export const RETRY_PERIOD_MS = 2_000;
/** client-go's JitterFactor for the acquire loop. */
const JITTER_FACTOR = 1.2;

/** The three timings of leader election, in ms (checked by `validateTimings`). */
export interface LeaderElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** The Lease to campaign for, the candidate, and its callbacks (defaults: client-go's timings). */
export interface LeaderElectorOptions extends Partial<LeaderElectionTimings> {
  raw: RawRequester;
  namespace: string;
  /** Lease name (`--leader-election-id`). */
  name: string;
  /** This candidate's identity (`--identity`). */
  identity: string;
  log: Logger;
  metrics?: Metrics;
  /** Called once when this candidate becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading?: (signal: AbortSignal) => void;
  /** Called once when leadership is lost or released after having been held. */
  onStoppedLeading?: () => void;
  /** Called whenever the observed holder changes (including to this candidate). */
  onNewLeader?: (identity: string) => void;
  /** Monotonic clock in ms for lease validity (default performance.now). */
  now?: () => number;
  /** Wall clock for the times written in the Lease (default Date.now). */
  wallClock?: () => number;
  random?: () => number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** The leader election record's identity: any change to it restarts the validity clock. */
function recordKey(spec: LeaseSpec): string {
  return JSON.stringify([
    spec.holderIdentity ?? '',
    spec.leaseDurationSeconds ?? 0,
    spec.acquireTime ?? '',
    spec.renewTime ?? '',
    spec.leaseTransitions ?? 0,
  ]);
}

/** Throws a RangeError unless leaseDuration > renewDeadline > 1.2 x retryPeriod > 0 (client-go's rules). */
export function validateTimings(t: LeaderElectionTimings): void {
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) {
    throw new RangeError('leaseDuration must be greater than renewDeadline');
  }
  if (!(t.renewDeadlineMs > JITTER_FACTOR * t.retryPeriodMs)) {
    throw new RangeError('renewDeadline must be greater than retryPeriod*1.2');
  }
  if (!(t.retryPeriodMs > 0)) throw new RangeError('retryPeriod must be positive');
}

/** One candidate for one Lease (see the module comment); `run` campaigns, renews and releases. */
export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #t: LeaderElectionTimings;
  readonly #now: () => number;
  readonly #wall: () => number;
  readonly #random: () => number;
  readonly #log: Logger;
  readonly #path: string;
  #observedSpec: string | undefined;
  #observedTime = 0;
  #observed: Lease | undefined;
  #leading = false;
  #reportedLeader: string | undefined;
  #leadership: AbortController | undefined;

  constructor(options: LeaderElectorOptions) {
    this.#o = options;
    this.#t = {
      leaseDurationMs: options.leaseDurationMs ?? LEASE_DURATION_MS,
      renewDeadlineMs: options.renewDeadlineMs ?? RENEW_DEADLINE_MS,
      retryPeriodMs: options.retryPeriodMs ?? RETRY_PERIOD_MS,
    };
    validateTimings(this.#t);
    if (!options.identity) throw new Error('leader election needs an identity');
    this.#now = options.now ?? (() => performance.now());
    this.#wall = options.wallClock ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#log = options.log.child({
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`;
    options.metrics?.leaderElectionMasterStatus.set({ name: options.name }, 0);
  }

  isLeader(): boolean {
    return this.#leading;
  }

  /** The holder this candidate last observed ('' when none). */
  getLeader(): string {
    return this.#observed?.spec?.holderIdentity ?? '';
  }

  /**
   * Campaigns until leading, then renews until leadership is lost or `signal`
   * aborts. Resolves `'lost'` when the lease was lost, `'stopped'` when `signal`
   * aborted (after releasing the lease if held and `release` is true).
   */
  async run(signal: AbortSignal, options: { release?: boolean } = {}): Promise<'lost' | 'stopped'> {
    const acquired = await this.#acquire(signal);
    if (!acquired) return 'stopped';
    const outcome = await this.#renewLoop(signal);
    if (outcome === 'stopped' && (options.release ?? true)) await this.release();
    this.#stopLeading();
    return outcome;
  }

  /** Gives up the lease if held: clears the holder so a follower takes over at its next retry. */
  async release(): Promise<boolean> {
    if (!this.#leading || !this.#observed) return false;
    const now = formatMicroTime(this.#wall());
    const lease: Lease = {
      ...this.#observed,
      spec: {
        ...this.#observed.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
      },
    };
    try {
      const updated = (await this.#o.raw({
        method: 'PUT',
        path: `${this.#path}/${encodeURIComponent(this.#o.name)}`,
        body: lease,
        // Bounded like a renewal, so that a shutdown never waits on an unreachable API server for long.
        signal: AbortSignal.timeout(this.#t.renewDeadlineMs),
      })) as Lease;
      this.#setObserved(updated);
      this.#log.info('released the lease');
      this.#stopLeading();
      return true;
    } catch (err) {
      this.#log.warn({ error: describeError(err) }, 'failed to release the lease');
      return false;
    }
  }

  async #acquire(signal: AbortSignal): Promise<boolean> {
    this.#log.info('attempting to acquire the lease');
    while (!signal.aborted) {
      if (await this.#tryAcquireOrRenew()) {
        this.#leading = true;
        this.#leadership = new AbortController();
        this.#o.metrics?.leaderElectionMasterStatus.set({ name: this.#o.name }, 1);
        this.#log.info('acquired the lease');
        this.#safely(() => this.#o.onStartedLeading?.((this.#leadership as AbortController).signal));
        return true;
      }
      const wait = this.#t.retryPeriodMs * (1 + this.#random() * JITTER_FACTOR);
      await sleep(wait, signal);
    }
    return false;
  }

  async #renewLoop(signal: AbortSignal): Promise<'lost' | 'stopped'> {
    while (!signal.aborted) {
      const deadline = this.#now() + this.#t.renewDeadlineMs;
      let renewed = false;
      // Retry every retryPeriod until the renew deadline (client-go's PollImmediateUntil);
      // each attempt is itself bounded by the time left.
      while (!signal.aborted && this.#now() < deadline) {
        if (await this.#tryAcquireOrRenew(deadline - this.#now())) {
          renewed = true;
          break;
        }
        await sleep(Math.min(this.#t.retryPeriodMs, Math.max(0, deadline - this.#now())), signal);
      }
      if (signal.aborted) return 'stopped';
      if (!renewed) {
        this.#log.error('failed to renew the lease before the renew deadline: leadership lost');
        return 'lost';
      }
      await sleep(this.#t.retryPeriodMs, signal);
    }
    return 'stopped';
  }

  /** One round of client-go's tryAcquireOrRenew. Never throws. */
  async #tryAcquireOrRenew(budgetMs = this.#t.renewDeadlineMs): Promise<boolean> {
    const { name, namespace, identity } = this.#o;
    const signal = AbortSignal.timeout(Math.max(1, Math.floor(budgetMs)));
    const raw: RawRequester = (request) => this.#o.raw({ ...request, signal });
    const nowWall = formatMicroTime(this.#wall());
    const leaseDurationSeconds = Math.max(1, Math.round(this.#t.leaseDurationMs / 1000));
    let current: Lease;
    try {
      current = (await raw({ path: `${this.#path}/${encodeURIComponent(name)}` })) as Lease;
    } catch (err) {
      if (!isNotFound(err)) {
        this.#log.warn({ error: describeError(err) }, 'failed to read the lease');
        return false;
      }
      try {
        const created = (await raw({
          method: 'POST',
          path: this.#path,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: nowWall,
              renewTime: nowWall,
              leaseTransitions: 0,
            },
          },
        })) as Lease;
        this.#setObserved(created);
        return true;
      } catch (createErr) {
        if (!isConflict(createErr)) {
          this.#log.warn({ error: describeError(createErr) }, 'failed to create the lease');
        }
        return false;
      }
    }

    // Validity is measured from when *we* saw the record change, by our clock.
    const spec = current.spec ?? {};
    if (recordKey(spec) !== this.#observedSpec) this.#setObserved(current);
    else this.#observed = current;
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const valid = this.#observedTime + durationMs > this.#now();
    if (holder !== '' && holder !== identity && valid) return false;

    const wasHolder = holder === identity;
    const next: Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: nowWall,
        acquireTime: wasHolder && spec.acquireTime ? spec.acquireTime : nowWall,
        leaseTransitions: wasHolder ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      const updated = (await raw({
        method: 'PUT',
        path: `${this.#path}/${encodeURIComponent(name)}`,
        body: next,
      })) as Lease;
      this.#setObserved(updated);
      return true;
    } catch (err) {
      if (!isConflict(err)) this.#log.warn({ error: describeError(err) }, 'failed to update the lease');
      return false;
    }
  }

  #setObserved(lease: Lease): void {
    const spec = lease.spec ?? {};
    this.#observed = lease;
    this.#observedSpec = recordKey(spec);
    this.#observedTime = this.#now();
    const holder = spec.holderIdentity ?? '';
    if (holder !== this.#reportedLeader) {
      this.#reportedLeader = holder;
      if (holder !== '') {
        this.#log.info({ leader: holder }, 'new leader observed');
        this.#safely(() => this.#o.onNewLeader?.(holder));
      }
    }
  }

  #stopLeading(): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#o.metrics?.leaderElectionMasterStatus.set({ name: this.#o.name }, 0);
    this.#leadership?.abort();
    this.#safely(() => this.#o.onStoppedLeading?.());
  }

  #safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ error: describeError(err) }, 'leader election callback failed');
    }
  }
}
