/**
 * The faults of the chaos run, each injected while the storm's reports flow and
 * resolved when the injection and its own recovery action are done (not when
 * the cluster has converged: the invariant checker measures that).
 */
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { ControlPlane } from '../../src/local/controlplane/index.ts';
import { createCa, issueServingCert } from '../../src/local/controlplane/index.ts';
import { expectOk, type KubeHttp, waitFor, within } from './http.ts';
import type { RoutingHistory } from './invariants.ts';
import { LEASE_NAME, type OperatorPair, type Replica } from './operators.ts';
import { applyWebhookConfiguration, SYSTEM_NAMESPACE } from './setup.ts';
import type { Storm, StormRouter } from './storm.ts';

/** The names the issue gives the faults, in the order the run injects them. */
export const FAULT_NAMES = [
  'apiserver-restart',
  'etcd-restart',
  'operator-kill',
  'leader-failover',
  'watch-expiry',
  'webhook-cert-rotation',
  'agent-kill',
  'agent-api-outage',
] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

/** Node agents that can be killed and restarted (the real `harouterctl agent`). */
export interface KillableAgents {
  /** Writes a burst of lines to `node`'s FIFO, then SIGKILLs its agent while lines are undelivered, and restarts it. */
  killWithBacklog(node: string, burst: () => void): Promise<{ pendingAtKill: number }>;
}

/** Everything a fault acts on. */
export interface FaultContext {
  plane: ControlPlane;
  admin: KubeHttp;
  operators: OperatorPair;
  storm: Storm;
  routers: StormRouter[];
  history: RoutingHistory;
  dir: string;
  webhookUrl: string;
  webhookNamespaces: string[];
  /** undefined while the run reports through the direct stand-in (no agent process to kill). */
  agents: KillableAgents | undefined;
  nodes: string[];
}

/** What a fault observed while it ran (evidence that it did what its name says). */
export type Evidence = Record<string, number | string | boolean>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every router fails over at once (a node's worth of transitions): the operator's busiest moment. */
function burst(ctx: FaultContext): void {
  for (const router of ctx.routers) {
    const to = router.agents.find((a) => a !== router.master);
    if (to) ctx.storm.failover(router, to);
  }
}

function microTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}.${String((ms % 1000) * 1000).padStart(6, '0')}Z`;
}

async function otherThan(ctx: FaultContext, leader: Replica): Promise<Replica> {
  return ctx.operators.replicas.find((r) => r !== leader) as Replica;
}

/** The SHA-256 fingerprint of the certificate a replica's webhook serves now. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (!cert) reject(new Error('no certificate'));
      else resolve(cert.fingerprint256);
    });
    socket.setTimeout(3000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
  });
}

async function writePairAtomically(dir: string, cert: string, key: string): Promise<void> {
  await copyFile(key, join(dir, 'tls.key.new'));
  await copyFile(cert, join(dir, 'tls.crt.new'));
  await rename(join(dir, 'tls.key.new'), join(dir, 'tls.key'));
  await rename(join(dir, 'tls.crt.new'), join(dir, 'tls.crt'));
}

let rotations = 0;

/** Injects one fault; resolves with what it observed. */
export async function inject(name: FaultName, ctx: FaultContext): Promise<Evidence> {
  switch (name) {
    case 'apiserver-restart': {
      ctx.plane.signal('kube-apiserver', 'SIGKILL');
      await sleep(2000);
      await ctx.plane.restart('kube-apiserver');
      return {};
    }
    case 'etcd-restart': {
      ctx.plane.signal('etcd', 'SIGKILL');
      await sleep(2000);
      await ctx.plane.restart('etcd');
      await waitFor(
        'kube-apiserver to answer after the etcd restart',
        async () => (await ctx.admin.request('GET', '/api/v1/namespaces/default')).status === 200,
        90_000,
      );
      return {};
    }
    case 'operator-kill': {
      const leader = await ctx.operators.leader();
      const starts = leader.starts;
      burst(ctx);
      await sleep(300);
      leader.kill('SIGKILL');
      await within(`${leader.identity} to exit after SIGKILL`, leader.exited(), 30_000);
      await waitFor(`${leader.identity} to be restarted`, async () => leader.starts > starts, 30_000);
      const next = await ctx.operators.leader(60_000);
      return { killed: leader.identity, newLeader: next.identity };
    }
    case 'leader-failover': {
      const leader = await ctx.operators.leader();
      const other = await otherThan(ctx, leader);
      const path = `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM_NAMESPACE}/leases/${LEASE_NAME}`;
      // The Lease is handed to the other replica (as a partitioned leader's would be taken over):
      // read and replace, retried when the leader's renewal lands in between.
      await waitFor(
        `the Lease ${LEASE_NAME} to be handed to ${other.identity}`,
        async () => {
          const lease = expectOk('read the Lease', await ctx.admin.request('GET', path)).body as {
            spec: Record<string, unknown>;
          };
          const now = Date.now();
          const answer = await ctx.admin.request('PUT', path, {
            ...lease,
            spec: {
              ...lease.spec,
              holderIdentity: other.identity,
              acquireTime: microTime(now),
              renewTime: microTime(now),
              leaseTransitions: Number(lease.spec.leaseTransitions ?? 0) + 1,
            },
          });
          return answer.status === 200;
        },
        30_000,
        100,
      );
      await within(`${leader.identity} to give up leading and exit`, leader.exited(), 60_000);
      await waitFor(`${other.identity} to lead`, () => other.isLeader(), 60_000);
      return { from: leader.identity, to: other.identity };
    }
    case 'watch-expiry': {
      // Compact etcd at its current revision, then restart the API server: its new watch cache starts
      // at the current revision and etcd has forgotten the older ones, so every watch resumed from the
      // resourceVersion it last saw is answered 410 Gone, and every informer must relist.
      const goneBefore = ctx.history.gone();
      const relistsBefore = await relists(ctx);
      // etcd takes client certificates only: through the control plane's etcdRequest.
      const range = await ctx.plane.etcdRequest('POST', '/v3/kv/range', { key: 'AA==' });
      const head = range.body as { header?: { revision?: string } };
      if (range.status !== 200 || !head.header?.revision)
        throw new Error(
          `etcd's revision unreadable: HTTP ${range.status} ${JSON.stringify(range.body).slice(0, 200)}`,
        );
      const compacted = await ctx.plane.etcdRequest('POST', '/v3/kv/compaction', {
        revision: head.header.revision,
        physical: true,
      });
      if (compacted.status !== 200) throw new Error(`etcd compaction failed: HTTP ${compacted.status}`);
      await ctx.plane.restart('kube-apiserver');
      await waitFor(
        "the chaos run's own watch to be answered 410 Gone",
        async () => ctx.history.gone() > goneBefore,
        90_000,
      );
      await waitFor(
        'the operators to relist after 410 Gone',
        async () => (await relists(ctx)) > relistsBefore,
        90_000,
      );
      return {
        compactedAtRevision: head.header.revision,
        checkerWatch410s: ctx.history.gone() - goneBefore,
        operatorRelists: (await relists(ctx)) - relistsBefore,
      };
    }
    case 'webhook-cert-rotation': {
      rotations++;
      const caDir = join(ctx.dir, `ca-${rotations + 1}`);
      await mkdir(caDir, { recursive: true, mode: 0o700 });
      const ca = await createCa(caDir, 'ca', `/CN=harouter-webhook-ca-${rotations + 1}`);
      const serving = await issueServingCert({ ca, dir: caDir, name: 'tls' });
      const oldBundle = await readFile(ctx.plane.ca.certPath, 'utf8');
      const newBundle = await readFile(ca.certPath, 'utf8');
      const newFingerprint = new X509Certificate(await readFile(serving.certPath)).fingerprint256;
      // 1. The API server trusts both CAs; 2. each replica's Secret volume gets the new pair; 3. once
      // both serve it, the old CA is dropped from the bundle. Reports flow all along.
      await applyWebhookConfiguration(
        ctx.admin,
        ctx.webhookUrl,
        Buffer.from(oldBundle + newBundle).toString('base64'),
        ctx.webhookNamespaces,
      );
      for (const r of ctx.operators.replicas)
        await writePairAtomically(r.certDir, serving.certPath, serving.keyPath);
      for (const r of ctx.operators.replicas)
        await waitFor(
          `${r.identity} to serve the new webhook certificate`,
          async () => (await servedFingerprint(r.webhookPort)) === newFingerprint,
          120_000,
        );
      await applyWebhookConfiguration(
        ctx.admin,
        ctx.webhookUrl,
        Buffer.from(newBundle).toString('base64'),
        ctx.webhookNamespaces,
      );
      return { newCa: `harouter-webhook-ca-${rotations + 1}` };
    }
    case 'agent-kill': {
      if (!ctx.agents)
        throw new Error(
          'agent-kill needs the node agent (harouterctl agent); the run reports through the direct stand-in',
        );
      const node = ctx.nodes[0] as string;
      const outcome = await ctx.agents.killWithBacklog(node, () => burst(ctx));
      return { node, pendingAtKill: outcome.pendingAtKill };
    }
    case 'agent-api-outage': {
      ctx.plane.signal('kube-apiserver', 'SIGSTOP');
      try {
        // Lines keep arriving while the API server is frozen: every agent has some to send.
        await sleep(1000);
        burst(ctx);
        await sleep(7000);
      } finally {
        ctx.plane.signal('kube-apiserver', 'SIGCONT');
      }
      return { frozenMs: 8000 };
    }
  }
}

/** How many times the operators' informers relisted after 410 Gone (every incarnation's log). */
async function relists(ctx: FaultContext): Promise<number> {
  let n = 0;
  for (const r of ctx.operators.replicas) n += await r.countLogLines('watch expired, relisting');
  return n;
}
