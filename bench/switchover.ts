/**
 * Switchover benchmark (not a test): the operator driving keepalived through
 * fences, on real keepalived in network namespaces (local mode with three
 * nodes whose configuration the agents render from `spec.vrrp`; the stand of
 * test/e2e/vrrp-stand.ts). The data plane is the clock of record: who holds
 * each virtual address, from `ip monitor` stamped by `ip` itself
 * (test/support/vip-observer.ts). In one run:
 *
 * 1. N routers, all on node-a (created preferring it, the preference then cleared);
 * 2. reloads: more routers added one at a time (every agent re-renders and
 *    reloads keepalived); `reloadTransitions` counts the holder changes of the N
 *    meanwhile (must be 0);
 * 3. drain: `kubectl cordon node-a`; `drainMs` runs to the last of the N routed
 *    elsewhere (EndpointSlice watch), `drainGapMs` is the longest time any of
 *    them had no holder; then uncordon;
 * 4. switchovers, one at a time: `spec.preferredAgent` patched to another node;
 *    `switchoverMs` runs from the request to the slice routing to it, `vipGapMs`
 *    is the time without a holder, `twoHolderMs` the time with two;
 * 5. split brain: node-c cut off the bridge; `splitBrainFenceMs` runs from each
 *    router's second `Primary` report (node-c's `observedAt`) to node-c's copy
 *    of the address gone; then the cut is healed and the fences' hold waited out.
 *
 * Prints one JSON line (fields in docs/performance.md).
 *
 *   npm run bench:switchover -- [--routers 50] [--switchovers 20] [--reloads 5] [--advert-ms 1000] [--keep]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { GROUP, HAROUTER_STATE, type HARouterState, VERSION } from '../src/api/index.ts';
import { SAMPLE_NAMESPACE } from '../src/local/sample.ts';
import { NODE_IP, type StandRouter, startVrrpStand, type VrrpStand } from '../test/e2e/vrrp-stand.ts';
import { waitFor } from '../test/integration/reconcile-harness.ts';
import { percentile } from '../test/support/stats.ts';
import { changes } from '../test/support/vip-timeline.ts';

const { values } = parseArgs({
  options: {
    routers: { type: 'string', default: '50' },
    switchovers: { type: 'string', default: '20' },
    reloads: { type: 'string', default: '5' },
    'advert-ms': { type: 'string', default: '1000' },
    'fence-hold': { type: 'string', default: '10' },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(values.routers);
const SWITCHOVERS = Number(values.switchovers);
const RELOADS = Number(values.reloads);
const ADVERT_MS = Number(values['advert-ms']);
const HOLD_SECONDS = Number(values['fence-hold']);
const NODES = ['node-a', 'node-b', 'node-c'] as const;
const log = (line: string) => process.stderr.write(`switchover-bench: ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (ms: number) => Math.round(ms);
const summary = (values: readonly number[]) => ({
  n: values.length,
  p50: round(percentile(values, 50)),
  p95: round(percentile(values, 95)),
  max: round(Math.max(...values)),
});

type AgentStatus = { name: string; fenced?: boolean };

async function unfenced(stand: VrrpStand, routers: readonly StandRouter[], timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      const all = await Promise.all(routers.map((r) => stand.getRouter(r)));
      return all.every((r) => ((r.status?.agents ?? []) as AgentStatus[]).every((a) => a.fenced !== true));
    },
    timeoutMs,
    250,
  );
}

/** The first `Primary` report of `agent` per router after `since` (ms), by its observedAt. */
async function watchPrimaries(kubeconfig: string, agent: string, since: number) {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const first = new Map<string, number>();
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${SAMPLE_NAMESPACE}/${HAROUTER_STATE.plural}`;
  const abort = await new Watch(kc).watch(
    path,
    {},
    (_type: string, state: HARouterState) => {
      const at = Date.parse(state.spec.observedAt);
      if (
        state.spec.agent === agent &&
        state.spec.state === 'Primary' &&
        at >= since &&
        !first.has(state.spec.routerId)
      )
        first.set(state.spec.routerId, at);
    },
    () => {},
  );
  return { first, stop: () => abort.abort() };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'harouter-switchover-bench-'));
  log(`starting local mode with keepalived in ${dir}`);
  const stand = await startVrrpStand({ dir });
  try {
    const extras = { advertIntervalMs: ADVERT_MS, fenceHoldSeconds: HOLD_SECONDS };
    await stand.settled(stand.routers);
    log(`creating ${N} routers preferring node-a`);
    const routers = await stand.addRouters(N, extras, 'node-a');
    for (const r of routers) await stand.vips.waitFor(r.vip, (h) => h.join() === 'node-a', 60_000);
    await Promise.all(routers.map((r) => stand.cluster.patchRouterSpec(r.id, { preferredAgent: null })));
    await unfenced(stand, routers, 30_000);

    log(`reloads: adding ${RELOADS} routers one at a time`);
    const reloadFrom = Date.now();
    for (let i = 0; i < RELOADS; i++) await stand.addRouters(1, extras);
    await sleep(3 * ADVERT_MS + 500);
    const reloadTransitions = routers.reduce(
      (sum, r) => sum + changes(stand.vips.spans(r.vip, reloadFrom)),
      0,
    );

    log(`drain: cordon node-a (holding ${routers.filter((r) => stand.holder(r) === 'node-a').length})`);
    const cordoned = Date.now();
    if ((await stand.kubectl(['cordon', 'node-a'])).code !== 0) throw new Error('kubectl cordon failed');
    const routedAt = await Promise.all(
      routers.map(async (r) => {
        await stand.vips.waitFor(r.vip, (h) => h.length === 1 && h[0] !== 'node-a', 60_000);
        return await stand.slices.routed(r.service, NODE_IP[stand.holder(r) as string] as string, 60_000);
      }),
    );
    const drainMs = Math.max(...routedAt) - cordoned;
    const drainEnd = Date.now();
    const drainGaps = routers.flatMap((r) => stand.vips.gaps(r.vip, cordoned, drainEnd).map((g) => g.ms));
    const drainTwoHolderMs = routers
      .flatMap((r) => stand.vips.overlaps(r.vip, cordoned, drainEnd))
      .reduce((s, g) => s + g.ms, 0);
    if ((await stand.kubectl(['uncordon', 'node-a'])).code !== 0) throw new Error('kubectl uncordon failed');
    await unfenced(stand, routers, 60_000);
    await sleep(2000);

    log(`switchovers: ${SWITCHOVERS}, one at a time`);
    const switchoverMs: number[] = [];
    const gapMs: number[] = [];
    let twoHolderMs = 0;
    for (let i = 0; i < SWITCHOVERS; i++) {
      const r = routers[i % routers.length] as StandRouter;
      const from = stand.holder(r) as string;
      const others = NODES.filter((n) => n !== from);
      const to = others[i % others.length] as string;
      const requested = Date.now();
      await stand.cluster.patchRouterSpec(r.id, { preferredAgent: to });
      const routed = await stand.slices.routed(r.service, NODE_IP[to] as string, 30_000);
      await stand.vips.waitFor(r.vip, (h) => h.join() === to, 30_000);
      await unfenced(stand, [r], 30_000);
      const end = Date.now();
      switchoverMs.push(routed - requested);
      gapMs.push(stand.vips.gaps(r.vip, requested, end).reduce((s, g) => s + g.ms, 0));
      twoHolderMs += stand.vips.overlaps(r.vip, requested, end).reduce((s, g) => s + g.ms, 0);
      await stand.cluster.patchRouterSpec(r.id, { preferredAgent: null });
    }

    const victims = routers.filter((r) => stand.holder(r) !== 'node-c');
    log(`split brain: node-c cut off (a backup of ${victims.length} routers)`);
    const cut = Date.now();
    const primaries = await watchPrimaries(stand.env.adminKubeconfig, 'node-c', cut);
    const loser = stand.nodes.node('node-c');
    await loser.detach();
    const fenceMs: number[] = [];
    try {
      for (const r of victims) {
        await stand.vips.waitFor(r.vip, (h) => h.includes('node-c'), 30_000);
        await stand.vips.waitFor(r.vip, (h) => !h.includes('node-c'), 30_000);
        const gone = stand.vips.events.find(
          (e) => e.vip === r.vip && e.holder === 'node-c' && !e.held && e.at > cut,
        );
        await waitFor(async () => primaries.first.has(r.id), 30_000);
        fenceMs.push((gone?.at ?? Number.NaN) - (primaries.first.get(r.id) as number));
      }
    } finally {
      primaries.stop();
      await loser.attach();
    }
    await unfenced(stand, routers, (HOLD_SECONDS + 60) * 1000);

    process.stdout.write(
      `${JSON.stringify({
        routers: N,
        advertIntervalMs: ADVERT_MS,
        switchoverMs: summary(switchoverMs),
        vipGapMs: { p50: round(percentile(gapMs, 50)), max: round(Math.max(...gapMs)) },
        twoHolderMs: round(twoHolderMs + drainTwoHolderMs),
        drainMs: round(drainMs),
        drainGapMs: round(Math.max(0, ...drainGaps)),
        splitBrainFenceMs: summary(fenceMs),
        reloadTransitions,
        reloadRouters: RELOADS,
        cpus: cpus().length,
        loadavg1: Math.round((loadavg()[0] ?? 0) * 10) / 10,
      })}\n`,
    );
  } finally {
    await stand.stop();
    if (values.keep) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

await main();
