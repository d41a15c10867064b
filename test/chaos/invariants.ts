/**
 * What the chaos run checks, against the truth it kept:
 *
 * - `reportsLost`: stored HARouterStates whose state is not the newest one the
 *   node's agent was given (after the stream pauses and delivery had time);
 * - `wrongRoutes`: HARouters whose status or EndpointSlice is not what `decide`
 *   gives for the stored reports and Nodes (what `plan` would still write);
 * - `notReadyRoutes`: from a watch on Nodes and EndpointSlices, slice versions
 *   that pointed a Service at a node that was NotReady at that revision (the
 *   slice newly pointed there, not a slice left from before the node went
 *   NotReady: those are measured as the withdrawal time).
 */

import type { V1Node } from '@kubernetes/client-node';
import type { HARouter, HARouterState } from '../../src/api/index.ts';
import { nodeFacts } from '../../src/controller/event-keys.ts';
import { decide, type NodeView } from '../../src/reconcile/decide.ts';
import { type EndpointSliceObject, isOwnedSlice, plan, sliceName } from '../../src/reconcile/plan.ts';
import { type ServiceFacts, serviceRefusal } from '../../src/reconcile/service-opt-in.ts';
import { percentile } from '../support/stats.ts';
import type { KubeHttp } from './http.ts';
import type { Truth } from './storm.ts';

/** The outcome of one check. */
export interface CheckResult {
  reportsLost: number;
  wrongRoutes: number;
  /** Reports whose `Accepted` condition is not the one decided (informational). */
  acceptedPending: number;
  /** Time until both counts were 0, or until the check gave up. */
  ms: number;
  examples: string[];
}

const API = '/apis/harouter.dev/v1alpha1';

async function list<T>(admin: KubeHttp, path: string): Promise<T[]> {
  const answer = await admin.request('GET', path);
  if (answer.status !== 200)
    throw new Error(`list ${path}: HTTP ${answer.status} ${answer.body.message ?? ''}`);
  return (answer.body.items as T[]) ?? [];
}

/** One pass: counts what differs now. */
export async function checkOnce(
  admin: KubeHttp,
  namespace: string,
  truth: Truth,
): Promise<Omit<CheckResult, 'ms'>> {
  const [reports, routers, slices, nodes, services] = await Promise.all([
    list<HARouterState>(admin, `${API}/namespaces/${namespace}/harouterstates`),
    list<HARouter>(admin, `${API}/namespaces/${namespace}/harouters`),
    list<EndpointSliceObject>(
      admin,
      `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices?labelSelector=${encodeURIComponent('endpointslice.kubernetes.io/managed-by=harouter.dev')}`,
    ),
    list<V1Node>(admin, '/api/v1/nodes'),
    list<ServiceFacts & { metadata: { name: string } }>(admin, `/api/v1/namespaces/${namespace}/services`),
  ]);
  const examples: string[] = [];
  const stored = new Map(reports.map((r) => [r.metadata.name, r]));
  let reportsLost = 0;
  for (const [name, state] of truth.entries()) {
    const got = stored.get(name)?.spec.state;
    if (got !== state) {
      reportsLost++;
      if (examples.length < 5) examples.push(`report ${name}: sent ${state}, stored ${got ?? 'nothing'}`);
    }
  }
  const views = new Map<string, NodeView>(nodes.map((n) => [n.metadata?.name ?? '', nodeFacts(n)]));
  const servicesByName = new Map(services.map((s) => [s.metadata.name, s]));
  const byRouter = new Map<string, HARouterState[]>();
  for (const r of reports) byRouter.set(r.spec.routerId, [...(byRouter.get(r.spec.routerId) ?? []), r]);
  let wrongRoutes = 0;
  let acceptedPending = 0;
  const now = new Date();
  for (const router of routers) {
    const own = byRouter.get(router.metadata.name) ?? [];
    const endpoint = router.spec.endpoint;
    const decision = decide({
      router,
      reports: own,
      nodes: new Map(
        router.spec.agents.flatMap((a) =>
          views.has(a.name) ? [[a.name, views.get(a.name) as NodeView]] : [],
        ),
      ),
      serviceRefusal: serviceRefusal(router, endpoint ? servicesByName.get(endpoint.serviceName) : undefined),
    });
    if (decision.kind !== 'route') continue;
    const wanted = endpoint ? sliceName(endpoint.serviceName) : undefined;
    const mine = slices.filter((s) => s.metadata.name === wanted || isOwnedSlice(s, router));
    const writes = plan(decision, { router, slices: mine, reports: own }, now);
    const routing = writes.filter(
      (w) => w.kind === 'applySlice' || w.kind === 'deleteSlice' || w.kind === 'routerStatus',
    );
    if (routing.length > 0 || decision.activeChanged) {
      wrongRoutes++;
      if (examples.length < 10)
        examples.push(
          `router ${router.metadata.name}: status active ${router.status?.activeAgent ?? 'none'}, decide gives ${decision.activeAgent ?? 'none'}; pending writes ${routing.map((w) => w.kind).join(',')}`,
        );
    }
    acceptedPending += writes.filter((w) => w.kind === 'reportStatus').length;
  }
  return { reportsLost, wrongRoutes, acceptedPending, examples };
}

/**
 * Checks until nothing is lost and nothing is wrong, or `timeoutMs` passes
 * (then returns what is still wrong). The stream must be paused: the checker
 * gives delivery and reconciliation time to finish, not a moving target.
 */
export async function checkInvariants(
  admin: KubeHttp,
  namespace: string,
  truth: Truth,
  timeoutMs: number,
): Promise<CheckResult> {
  const started = Date.now();
  let last: Omit<CheckResult, 'ms'> | undefined;
  let error = '';
  while (Date.now() - started < timeoutMs) {
    try {
      last = await checkOnce(admin, namespace, truth);
      if (last.reportsLost === 0 && last.wrongRoutes === 0) return { ...last, ms: Date.now() - started };
    } catch (err) {
      error = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (!last)
    throw new Error(`the invariant checker could not read the cluster for ${timeoutMs} ms: ${error}`);
  return { ...last, ms: Date.now() - started };
}

// ---------------------------------------------------------------------------
// The watch on Nodes and EndpointSlices.

interface NodeEvent {
  rv: bigint;
  ready: boolean;
  at: number;
  /** How the checker learnt of it: a live watch event, or a (re)list after a gap (`at` is then late). */
  source?: 'watch' | 'list';
  /** The Ready condition's lastTransitionTime (server side, whole seconds), ms since the epoch. */
  changedAt?: number;
}

interface SliceVersion {
  rv: bigint;
  node: string | undefined;
  at: number;
  source?: 'watch' | 'list';
  /** The newest managedFields time of the version (server side, whole seconds), ms since the epoch. */
  writtenAt?: number;
}

/** What `RoutingHistory` records of a version besides its revision and time of arrival. */
export interface VersionFacts {
  source?: 'watch' | 'list';
  /** Server-side time of the change (whole seconds), ms since the epoch. */
  serverAt?: number;
}

const timeOf = (iso: unknown): number | undefined => {
  const ms = typeof iso === 'string' ? Date.parse(iso) : Number.NaN;
  return Number.isFinite(ms) ? ms : undefined;
};

interface WatchEvent {
  type: string;
  object: { metadata?: { name?: string; resourceVersion?: string }; code?: number };
}

/** A list-then-watch loop that survives restarts and relists on 410, calling `onObject` for each version. */
class RawWatch {
  gone = 0;
  readonly #abort = new AbortController();

  readonly admin: KubeHttp;
  readonly path: string;
  readonly onObject: (object: Record<string, unknown>, type: string) => void;

  constructor(
    admin: KubeHttp,
    path: string,
    onObject: (object: Record<string, unknown>, type: string) => void,
  ) {
    this.admin = admin;
    this.path = path;
    this.onObject = onObject;
  }

  async run(): Promise<void> {
    let rv = '';
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      if (rv === '') {
        const answer = await this.admin.request('GET', this.path);
        if (answer.status !== 200) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        for (const item of (answer.body.items as Record<string, unknown>[]) ?? [])
          this.onObject(item, 'LIST');
        rv = String((answer.body.metadata as { resourceVersion?: string })?.resourceVersion ?? '');
      }
      const sep = this.path.includes('?') ? '&' : '?';
      let expired = false;
      const status = await this.admin.watch(
        `${this.path}${sep}watch=1&allowWatchBookmarks=true&timeoutSeconds=50&resourceVersion=${rv}`,
        (line) => {
          let event: WatchEvent;
          try {
            event = JSON.parse(line) as WatchEvent;
          } catch {
            return;
          }
          if (event.type === 'ERROR') {
            if (event.object.code === 410) expired = true;
            return;
          }
          rv = event.object.metadata?.resourceVersion ?? rv;
          if (event.type !== 'BOOKMARK') this.onObject(event.object as Record<string, unknown>, event.type);
        },
        signal,
      );
      if (expired || status === 410) {
        this.gone++;
        rv = '';
      } else if (status !== 200) {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  stop(): void {
    this.#abort.abort();
  }
}

/**
 * Watches Nodes and the namespace's managed EndpointSlices for the whole run
 * and judges every slice version against the Node readiness at its revision
 * (etcd revisions order both resources).
 */
export class RoutingHistory {
  readonly #nodes = new Map<string, NodeEvent[]>();
  readonly #slices = new Map<string, SliceVersion[]>();
  readonly #watches: RawWatch[];

  /** Without `admin`, nothing is watched: events come only through `recordNode` and `recordSlice`. */
  constructor(admin?: KubeHttp, namespace = '') {
    this.#watches = admin
      ? [
          new RawWatch(admin, '/api/v1/nodes', (object, type) => {
            const node = object as unknown as V1Node;
            const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
            this.recordNode(
              node.metadata?.name ?? '',
              BigInt(node.metadata?.resourceVersion ?? '0'),
              nodeFacts(node).ready,
              Date.now(),
              {
                source: type === 'LIST' ? 'list' : 'watch',
                serverAt: timeOf(ready?.lastTransitionTime as unknown),
              },
            );
          }),
          new RawWatch(
            admin,
            `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices?labelSelector=${encodeURIComponent('endpointslice.kubernetes.io/managed-by=harouter.dev')}`,
            (object, type) => {
              const slice = object as unknown as EndpointSliceObject;
              const node = type === 'DELETED' ? undefined : (slice.endpoints ?? [])[0]?.nodeName;
              const managed = (slice.metadata as { managedFields?: { time?: string }[] }).managedFields ?? [];
              const written = managed.map((m) => timeOf(m.time) ?? 0).reduce((a, b) => Math.max(a, b), 0);
              this.recordSlice(
                slice.metadata.name,
                BigInt(slice.metadata.resourceVersion ?? '0'),
                node,
                Date.now(),
                { source: type === 'LIST' ? 'list' : 'watch', ...(written ? { serverAt: written } : {}) },
              );
            },
          ),
        ]
      : [];
  }

  /** A version of a Node: its readiness at etcd revision `rv`. */
  recordNode(name: string, rv: bigint, ready: boolean, at = Date.now(), facts: VersionFacts = {}): void {
    const events = this.#nodes.get(name) ?? [];
    events.push({ rv, ready, at, source: facts.source, changedAt: facts.serverAt });
    this.#nodes.set(name, events);
  }

  /** A version of a slice: the node its endpoint names at revision `rv` (undefined: none, or deleted). */
  recordSlice(
    name: string,
    rv: bigint,
    node: string | undefined,
    at = Date.now(),
    facts: VersionFacts = {},
  ): void {
    const versions = this.#slices.get(name) ?? [];
    versions.push({ rv, node, at, source: facts.source, writtenAt: facts.serverAt });
    this.#slices.set(name, versions);
  }

  start(): void {
    for (const w of this.#watches) void w.run();
  }

  stop(): void {
    for (const w of this.#watches) w.stop();
  }

  /** How many times a watch of the checker was answered 410 Gone (the watch-expiry fault shows here). */
  gone(): number {
    return this.#watches.reduce((n, w) => n + w.gone, 0);
  }

  #readyAt(node: string, rv: bigint): boolean {
    let ready = true;
    for (const e of this.#nodes.get(node) ?? []) if (e.rv <= rv) ready = e.ready;
    return ready;
  }

  /** The event by which `node` went NotReady last at or before revision `rv` (undefined: it was Ready). */
  #notReadyEdge(node: string, rv: bigint): NodeEvent | undefined {
    let edge: NodeEvent | undefined;
    for (const e of this.#nodes.get(node) ?? []) {
      if (e.rv > rv) break;
      edge = e.ready ? undefined : (edge ?? e);
    }
    return edge;
  }

  /**
   * The judgement of every slice version seen so far. A slice newly pointed at a
   * NotReady node counts in `notReadyRoutes` when the watch saw that slice version
   * more than `graceMs` after it saw the node go NotReady; within `graceMs` it
   * is a race any cache-based controller has (the decision read the Node from its
   * cache a moment before the Node changed) and counts in `notReadyRaces`. A version
   * the checker learnt from a relist is timed by the server's clock instead.
   */
  judge(graceMs = 2000): {
    notReadyRoutes: number;
    notReadyRaces: number;
    withdrawMaxMs: number;
    /** Which slice, node and revisions the longest withdrawal was, and how each end was seen. */
    withdrawMaxExample?: string;
    /** How many withdrawals from a NotReady node were timed, and their median and 95th percentile. */
    withdrawals: number;
    withdrawP50Ms: number;
    withdrawP95Ms: number;
    sliceVersions: number;
    examples: string[];
  } {
    let notReadyRoutes = 0;
    let notReadyRaces = 0;
    let sliceVersions = 0;
    let withdrawMaxMs = 0;
    let withdrawMaxExample: string | undefined;
    const withdrawals: number[] = [];
    const examples: string[] = [];
    for (const [name, versions] of this.#slices) {
      for (const [i, v] of versions.entries()) {
        sliceVersions++;
        if (v.node === undefined || this.#readyAt(v.node, v.rv)) continue;
        const prev = versions[i - 1];
        if (prev && prev.node === v.node) continue;
        const edge = this.#notReadyEdge(v.node, v.rv);
        const lateMs = sliceTime(v) - (edge === undefined ? 0 : nodeTime(edge));
        if (lateMs <= graceMs) notReadyRaces++;
        else notReadyRoutes++;
        if (examples.length < 10) {
          const iso = (ms: number | undefined) => (ms === undefined ? '?' : new Date(ms).toISOString());
          examples.push(
            `slice ${name} pointed at ${v.node} at revision ${v.rv}, ${lateMs} ms after it went NotReady ` +
              `(slice: ${v.source ?? 'watch'} at ${iso(v.at)}, written ${iso(v.writtenAt)}, previous ` +
              `${prev ? `${prev.node ?? 'none'} at revision ${prev.rv}` : 'none'}; node NotReady at revision ` +
              `${edge?.rv ?? '?'}: ${edge?.source ?? 'watch'} at ${iso(edge?.at)}, changed ${iso(edge?.changedAt)})`,
          );
        }
      }
    }
    for (const [node, events] of this.#nodes) {
      for (const [i, e] of events.entries()) {
        // A NotReady edge: the node was Ready before (or first seen NotReady), until it is Ready again.
        if (e.ready || (i > 0 && !events[i - 1]?.ready)) continue;
        const readyAgain = events.slice(i + 1).find((x) => x.ready)?.rv;
        for (const [name, versions] of this.#slices) {
          const before = versions.filter((v) => v.rv <= e.rv).at(-1);
          if (before?.node !== node) continue;
          const after = versions.find(
            (v) => v.rv > e.rv && (readyAgain === undefined || v.rv < readyAgain) && v.node !== node,
          );
          if (!after) continue;
          const ms = sliceTime(after) - nodeTime(e);
          withdrawals.push(ms);
          if (ms <= withdrawMaxMs) continue;
          withdrawMaxMs = ms;
          const iso = (at: number | undefined) => (at === undefined ? '?' : new Date(at).toISOString());
          withdrawMaxExample =
            `slice ${name} left ${node} at revision ${after.rv} (${after.source ?? 'watch'}), ` +
            `${withdrawMaxMs} ms after it went NotReady at revision ${e.rv} (${e.source ?? 'watch'}); ` +
            `server times: slice written ${iso(after.writtenAt)}, node changed ${iso(e.changedAt)}`;
        }
      }
    }
    return {
      notReadyRoutes,
      notReadyRaces,
      withdrawMaxMs,
      ...(withdrawMaxExample !== undefined ? { withdrawMaxExample } : {}),
      withdrawals: withdrawals.length,
      withdrawP50Ms: withdrawals.length > 0 ? percentile(withdrawals, 50) : 0,
      withdrawP95Ms: withdrawals.length > 0 ? percentile(withdrawals, 95) : 0,
      sliceVersions,
      examples,
    };
  }
}

/**
 * When a slice version happened, as far as the checker can tell. A version learnt
 * from a relist (the checker's own watch had a gap) arrived late, so its write
 * time on the server (whole seconds) bounds it instead, at the end of its second.
 */
function sliceTime(v: SliceVersion): number {
  return v.source === 'list' && v.writtenAt !== undefined ? v.writtenAt + 999 : v.at;
}

/** When a Node event happened: like {@link sliceTime}, a relisted one by its server time (start of its second). */
function nodeTime(e: NodeEvent): number {
  return e.source === 'list' && e.changedAt !== undefined ? e.changedAt : e.at;
}
