/**
 * Admission fuzzing on the real API server: generated HARouterStates and
 * HARouters (arbitraries.ts) sent with real tokens to one namespace per
 * admission mode (webhook, policy, both), as dry runs (every layer runs:
 * authentication, RBAC, schema and CEL, the webhook and the policy; nothing is
 * stored, so every case acts on the same stored objects), each answer compared
 * with the contract's verdict (oracle.ts).
 */
import { API_VERSION, HAROUTER, HAROUTER_STATE } from '../../src/api/index.ts';
import { pool } from '../support/pool.ts';
import { type ActorName, type FuzzCase, type FuzzWorld, generateCases } from './arbitraries.ts';
import { type Answer, expectOk, type KubeHttp } from './http.ts';
import {
  type Actor,
  MODES,
  type Mode,
  namesRule,
  routerVerdict,
  type StoredReport,
  stateVerdict,
  type Verdict,
} from './oracle.ts';

/** A real client per identity, and what the oracle knows of it. */
export type FuzzClients = Record<ActorName, { http: KubeHttp; actor: Actor }>;

/** The fuzzer's figures. */
export interface FuzzResult {
  cases: number;
  requests: number;
  wronglyAdmitted: number;
  wronglyDenied: number;
  /** Denials whose message names none of the rule's words. */
  unnamedDenials: number;
  /** Requests with no verdict from the server after retries (transport failures, 5xx). */
  errors: number;
  byMode: Record<Mode, { allowed: number; denied: number }>;
  /** The first disagreements, for the log. */
  examples: string[];
  ms: number;
}

const statePath = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${HAROUTER_STATE.plural}`;
const routerPath = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${HAROUTER.plural}`;

/** The fuzz namespaces' fixtures: HARouters and stored reports, identical in every namespace. */
export async function prepareFuzzWorld(
  admin: KubeHttp,
  clients: FuzzClients,
  namespaces: Record<Mode, string>,
  nodes: { a: string; b: string; c: string },
): Promise<FuzzWorld> {
  const id = (i: number, kind: number) => `0f0f0f0f-0000-4000-8${kind}00-${String(i).padStart(12, '0')}`;
  const createRouters = Array.from({ length: 8 }, (_, i) => id(i, 1));
  const updateRouters = Array.from({ length: 8 }, (_, i) => id(i, 2));
  const foreignRouter = id(0, 3);
  const stored: StoredReport[] = [];
  for (const routerId of updateRouters) {
    for (const agent of [nodes.a, nodes.b]) {
      stored.push({
        metadata: { name: `${routerId}.${agent}` },
        spec: { routerId, agent, state: 'Primary', observedAt: '2026-01-01T00:00:00.5Z' },
      });
    }
  }
  for (const ns of Object.values(namespaces)) {
    const routers: [string, string[]][] = [
      ...createRouters.map((r) => [r, [nodes.a, nodes.b, nodes.c]] as [string, string[]]),
      ...updateRouters.map((r) => [r, [nodes.a, nodes.b]] as [string, string[]]),
      [foreignRouter, [nodes.c]],
    ];
    for (const [name, agents] of routers) {
      const answer = await admin.request('POST', routerPath(ns), {
        apiVersion: API_VERSION,
        kind: HAROUTER.kind,
        metadata: { name },
        spec: { agents: agents.map((a) => ({ name: a })) },
      });
      expectOk(`create HARouter ${ns}/${name}`, answer, [409]);
    }
    for (const report of stored) {
      const owner = report.spec.agent === nodes.a ? clients.reporterA.http : clients.reporterB.http;
      // The webhook's membership rule reads its informer cache: a router created a moment ago may not be there yet.
      let answer: Answer | undefined;
      for (let attempt = 0; attempt < 40; attempt++) {
        answer = await owner.request('POST', statePath(ns), {
          apiVersion: API_VERSION,
          kind: HAROUTER_STATE.kind,
          ...report,
        });
        if (answer.status === 201 || answer.status === 409) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expectOk(`create the stored report ${ns}/${report.metadata.name}`, answer as Answer, [409]);
    }
  }
  return { nodeA: nodes.a, nodeB: nodes.b, createRouters, foreignRouter, stored, nowMs: Date.now() };
}

const transient = (a: Answer) => a.status === 0 || a.status === 429 || a.status >= 500;

/**
 * Generates `count` cases from `seed` and sends each in every mode's namespace;
 * returns the comparison with the oracle.
 */
export async function runFuzz(options: {
  admin: KubeHttp;
  clients: FuzzClients;
  namespaces: Record<Mode, string>;
  world: FuzzWorld;
  count: number;
  seed: number;
  concurrency?: number;
  routers: ReadonlyMap<string, readonly string[]>;
}): Promise<FuzzResult> {
  const { admin, clients, namespaces, world } = options;
  const started = Date.now();
  const cases = generateCases(world, options.count, options.seed);
  const result: FuzzResult = {
    cases: cases.length,
    requests: 0,
    wronglyAdmitted: 0,
    wronglyDenied: 0,
    unnamedDenials: 0,
    errors: 0,
    byMode: {
      webhook: { allowed: 0, denied: 0 },
      policy: { allowed: 0, denied: 0 },
      both: { allowed: 0, denied: 0 },
    },
    examples: [],
    ms: 0,
  };
  const versions = new Map<string, string>();
  const resourceVersion = async (ns: string, name: string, refresh = false): Promise<string> => {
    const key = `${ns}/${name}`;
    if (refresh || !versions.has(key)) {
      let read = await admin.request('GET', `${statePath(ns)}/${name}`);
      for (let attempt = 1; attempt < 5 && transient(read); attempt++) {
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
        read = await admin.request('GET', `${statePath(ns)}/${name}`);
      }
      const got = expectOk(`read ${key}`, read);
      versions.set(key, (got.body.metadata as { resourceVersion: string }).resourceVersion);
    }
    return versions.get(key) as string;
  };

  const send = async (c: FuzzCase, ns: string): Promise<Answer> => {
    if (c.kind === 'router') return admin.request('POST', `${routerPath(ns)}?dryRun=All`, c.object);
    const http = clients[c.actor].http;
    const old = c.stored === undefined ? undefined : world.stored[c.stored];
    if (c.operation === 'CREATE') return http.request('POST', `${statePath(ns)}?dryRun=All`, c.object);
    const name = old?.metadata.name as string;
    if (c.operation === 'DELETE') return http.request('DELETE', `${statePath(ns)}/${name}?dryRun=All`);
    let answer: Answer | undefined;
    for (let attempt = 0; attempt < 4; attempt++) {
      const body = structuredClone(c.object ?? {});
      const meta = (
        typeof body.metadata === 'object' && body.metadata !== null ? body.metadata : {}
      ) as Record<string, unknown>;
      body.metadata = { ...meta, resourceVersion: await resourceVersion(ns, name, attempt > 0) };
      answer = await http.request('PUT', `${statePath(ns)}/${name}?dryRun=All`, body);
      // The operator writes `Accepted` on the stored reports: a conflict is the precondition, not a verdict.
      if (answer.status !== 409) break;
    }
    return answer as Answer;
  };

  const verdictOf = (c: FuzzCase, mode: Mode): Verdict => {
    if (c.kind === 'router') return routerVerdict(c.object);
    const old = c.stored === undefined ? undefined : world.stored[c.stored];
    return stateVerdict(
      mode,
      { operation: c.operation, actor: clients[c.actor].actor, object: c.object, ...(old ? { old } : {}) },
      { routers: options.routers, nowMs: Date.now() },
    );
  };

  const jobs = cases.flatMap((c, index) => MODES.map((mode) => ({ c, index, mode })));
  await pool(jobs, options.concurrency ?? 24, async ({ c, index, mode }) => {
    let answer: Answer = { status: 0, body: {} };
    for (let attempt = 0; attempt < 5; attempt++) {
      answer = await send(c, namespaces[mode]);
      if (!transient(answer)) break;
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
    result.requests++;
    const verdict = verdictOf(c, mode);
    const note = (what: string) => {
      if (result.examples.length < 40)
        result.examples.push(
          `${what} case ${index} (${mode}, ${c.kind === 'state' ? `${c.operation} by ${c.actor}` : 'HARouter by admin'}, ${c.how}): ` +
            `expected ${verdict.allowed ? 'allowed' : `denied by ${verdict.rule}`}, got HTTP ${answer.status} ${(answer.body.message ?? '').slice(0, 300)}` +
            ` object ${JSON.stringify(c.kind === 'state' ? c.object : c.object)?.slice(0, 400)}`,
        );
    };
    if (transient(answer)) {
      result.errors++;
      note('no verdict');
      return;
    }
    const allowed = answer.status >= 200 && answer.status < 300;
    result.byMode[mode][allowed ? 'allowed' : 'denied']++;
    if (allowed && !verdict.allowed) {
      result.wronglyAdmitted++;
      note('wrongly admitted');
    } else if (!allowed && verdict.allowed) {
      result.wronglyDenied++;
      note('wrongly denied');
    } else if (!allowed && !namesRule(verdict, answer.body.message ?? '')) {
      result.unnamedDenials++;
      note('denial without its rule');
    }
  });
  result.ms = Date.now() - started;
  return result;
}
