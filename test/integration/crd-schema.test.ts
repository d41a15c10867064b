/**
 * The CRDs alone, on the real API server: no webhook, no policy. Every malformed
 * object of the shared corpus and of the admission table is refused by the schema
 * and its CEL rules; every valid one is accepted. The same corpus runs through the
 * zod schemas in test/unit/api-schemas.test.ts, so the two cannot drift.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../src/generate-manifests.ts';
import {
  ADMISSION_CASES,
  collectionPath,
  installCrds,
  kubeRequest,
  NODE_A,
  ROUTER_CORPUS,
  report,
  STATE_CORPUS,
  toJson,
  waitFor,
} from '../support/admission-cases.ts';
import { adminKubeConfig, controlPlaneInfo, createTestNamespace } from '../support/index.ts';

const admin = adminKubeConfig();
let namespace = '';

beforeAll(async () => {
  await installCrds(admin);
  namespace = await createTestNamespace('crd');
});

const dryRunCreate = (object: unknown, plural = 'harouterstates') =>
  kubeRequest(admin, 'POST', `${collectionPath(namespace, plural)}?dryRun=All`, toJson(object));

describe('the CRD files', () => {
  it('install with kubectl apply (server dry run)', async () => {
    const { kubectl } = controlPlaneInfo().binaries;
    const { stdout } = await promisify(execFile)(kubectl, [
      '--kubeconfig',
      controlPlaneInfo().kubeconfigPath,
      'apply',
      '--dry-run=server',
      '-f',
      `${REPO_ROOT}crds/`,
    ]);
    expect(stdout).toContain('harouterstates.harouter.dev');
    expect(stdout).toContain('harouters.harouter.dev');
  });
});

describe('what people see', () => {
  const kubectl = (...args: string[]) =>
    promisify(execFile)(controlPlaneInfo().binaries.kubectl, [
      '--kubeconfig',
      controlPlaneInfo().kubeconfigPath,
      ...args,
    ]);

  it('kubectl explain describes the fields', async () => {
    // The OpenAPI document catches up with a new CRD a few seconds after it is established.
    const explain = (field: string) =>
      waitFor(`kubectl explain ${field}`, async () => (await kubectl('explain', field)).stdout);
    expect(await explain('harouterstates.spec.observedAt')).toContain(
      'RFC 3339 time at which the agent saw the transition',
    );
    expect(await explain('har.spec.agents')).toContain('The agents (nodes) that may host the router');
    // kubectl wraps descriptions at 80 columns.
    const explained = async (field: string) => (await explain(field)).replace(/\s+/g, ' ');
    expect(await explained('har.spec.vrrp.virtualIPs')).toContain('The first is advertised');
    expect(await explained('har.spec.preferredAgent')).toContain('The agent the router should be active on');
    expect(await explained('har.status.agents.fenced')).toContain('stay in FAULT');
    expect(await explained('har.status.vrrp.vrid')).toContain('virtual router id');
  });

  it('kubectl get prints the contract columns, by short name and category', async () => {
    const routerId = randomUUID();
    const created = await kubeRequest(admin, 'POST', collectionPath(namespace), report(routerId, NODE_A));
    expect(created.status).toBe(201);
    const { stdout } = await kubectl('get', 'hars', '-n', namespace, `${routerId}.${NODE_A}`);
    const header = stdout.split('\n')[0]?.split(/\s{2,}/);
    expect(header).toEqual(['NAME', 'ROUTER', 'AGENT', 'STATE', 'OBSERVED', 'ACCEPTED', 'AGE']);
    expect(stdout).toContain(routerId);
    const all = await kubectl('get', 'harouter-all', '-n', namespace);
    expect(all.stdout).toContain(`harouterstate.harouter.dev/${routerId}.${NODE_A}`);
    const bySingular = await kubectl('get', 'harouterstate', '-n', namespace, `${routerId}.${NODE_A}`);
    expect(bySingular.stdout).toContain(routerId);
    const routers = await kubectl('get', 'har', '-n', namespace, '-o', 'json');
    expect(JSON.parse(routers.stdout).items).toEqual([]);
  });
});

describe('HARouterState corpus against the CRD (valid ones accepted, the rest refused)', () => {
  it.each(STATE_CORPUS)('$name (valid: $valid)', async ({ object, valid }) => {
    const res = await dryRunCreate(object(randomUUID()));
    expect(res.status, JSON.stringify(res.body.message)).toBe(valid ? 201 : 422);
  });
});

describe('HARouter corpus against the CRD', () => {
  it.each(ROUTER_CORPUS)('$name (valid: $valid)', async ({ object, valid }) => {
    const res = await dryRunCreate(object(randomUUID()), 'harouters');
    expect(res.status, JSON.stringify(res.body.message)).toBe(valid ? 201 : 422);
  });
});

describe('admission-table cases the schema refuses, with no admission installed', () => {
  it.each(ADMISSION_CASES.filter((c) => c.schema))('$name', async (c) => {
    const ctx = { routerId: randomUUID(), nowMs: Date.now() };
    let res: Awaited<ReturnType<typeof kubeRequest>>;
    if (c.operation === 'CREATE') {
      res = await dryRunCreate(c.object?.(ctx));
    } else {
      const created = await kubeRequest(
        admin,
        'POST',
        collectionPath(namespace),
        report(ctx.routerId, c.existing ?? NODE_A),
      );
      expect(created.status).toBe(201);
      const next = toJson(c.object?.(ctx)) as { metadata: Record<string, unknown> };
      next.metadata.resourceVersion = (created.body.metadata as { resourceVersion: string }).resourceVersion;
      res = await kubeRequest(admin, 'PUT', `${collectionPath(namespace)}/${next.metadata.name}`, next);
    }
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(c.expect.message ?? /./);
  });
});

describe('transition rules', () => {
  async function stored(spec: Record<string, unknown> = {}) {
    const routerId = randomUUID();
    const res = await kubeRequest(admin, 'POST', collectionPath(namespace), report(routerId, NODE_A, spec));
    expect(res.status).toBe(201);
    return { routerId, resourceVersion: (res.body.metadata as { resourceVersion: string }).resourceVersion };
  }
  const put = (routerId: string, resourceVersion: string, spec: Record<string, unknown>) => {
    const next = report(routerId, NODE_A, spec);
    next.metadata.resourceVersion = resourceVersion;
    return kubeRequest(admin, 'PUT', `${collectionPath(namespace)}/${next.metadata.name}`, next);
  };

  it('refuses an observedAt one nanosecond older, as FieldValueForbidden on .observedAt with "stale report:"', async () => {
    const { routerId, resourceVersion } = await stored({ observedAt: '2026-01-01T00:00:00.123456789Z' });
    const res = await put(routerId, resourceVersion, { observedAt: '2026-01-01T01:00:00.123456788+01:00' });
    expect(res.status).toBe(422);
    const causes = (res.body.details as { causes: { reason: string; message: string; field: string }[] })
      .causes;
    expect(causes).toContainEqual(
      expect.objectContaining({
        reason: 'FieldValueForbidden',
        field: 'spec.observedAt',
        message: expect.stringMatching(/^Forbidden: stale report: /),
      }),
    );
  });

  it('accepts the same instant written with another offset, and a newer one', async () => {
    const { routerId, resourceVersion } = await stored({ observedAt: '2026-01-01T00:00:00.5Z' });
    const same = await put(routerId, resourceVersion, {
      observedAt: '2026-01-01T02:00:00.500000000+02:00',
      state: 'Backup',
    });
    expect(same.status).toBe(200);
    const rv = (same.body.metadata as { resourceVersion: string }).resourceVersion;
    const newer = await put(routerId, rv, { observedAt: '2026-01-01T00:00:00.500000001Z', state: 'Fault' });
    expect(newer.status).toBe(200);
  });

  it('refuses a changed routerId', async () => {
    const { routerId, resourceVersion } = await stored();
    const next = report(routerId, NODE_A, { routerId: randomUUID() });
    next.metadata.resourceVersion = resourceVersion;
    const res = await kubeRequest(admin, 'PUT', `${collectionPath(namespace)}/${next.metadata.name}`, next);
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/immutable rule: routerId cannot change/);
  });
});

describe('HARouter transition rules (spec.vrrp)', () => {
  const vrrp = { interface: 'eth0', virtualIPs: ['192.0.2.10/24', '192.0.2.11/24'] };
  const routerPath = (routerId: string) => `${collectionPath(namespace, 'harouters')}/${routerId}`;
  async function storedRouter(spec: Record<string, unknown>) {
    const routerId = randomUUID();
    const created = await kubeRequest(admin, 'POST', collectionPath(namespace, 'harouters'), {
      apiVersion: 'harouter.dev/v1alpha1',
      kind: 'HARouter',
      metadata: { name: routerId },
      spec: { agents: [{ name: NODE_A }, { name: 'node-b' }], ...spec },
    });
    expect(created.status, JSON.stringify(created.body.message)).toBe(201);
    return routerId;
  }
  const patch = (routerId: string, body: unknown) =>
    kubeRequest(admin, 'PATCH', routerPath(routerId), body, 'application/merge-patch+json');

  it('fills in the defaults', async () => {
    const routerId = await storedRouter({ vrrp });
    const res = await kubeRequest(admin, 'GET', routerPath(routerId));
    expect((res.body.spec as { vrrp: unknown }).vrrp).toEqual({
      ...vrrp,
      segment: 'default',
      advertIntervalMs: 1000,
      fenceHoldSeconds: 60,
      failbackDelaySeconds: 30,
    });
  });

  it.each([
    [
      'a changed vrid',
      { vrid: 7 },
      { vrid: 8 },
      /immutable rule: spec.vrrp.vrid cannot be set, changed or removed/,
    ],
    ['a vrid set later', {}, { vrid: 8 }, /immutable rule: spec.vrrp.vrid/],
    ['a removed vrid', { vrid: 7 }, { vrid: null }, /immutable rule: spec.vrrp.vrid/],
    [
      'a changed segment',
      { segment: 'edge' },
      { segment: 'core' },
      /immutable rule: spec.vrrp.segment cannot change/,
    ],
    ['the defaulted segment changed', {}, { segment: 'core' }, /immutable rule: spec.vrrp.segment/],
    [
      'a changed first virtual IP',
      {},
      { virtualIPs: ['192.0.2.12/24', '192.0.2.11/24'] },
      /immutable rule: the first of spec.vrrp.virtualIPs cannot change/,
    ],
  ])('refuses %s', async (_name, initial, change, message) => {
    const routerId = await storedRouter({ vrrp: { ...vrrp, ...initial } });
    const res = await patch(routerId, { spec: { vrrp: change } });
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(message);
  });

  it('accepts changes to the other virtual IPs, the timers and the preferred agent', async () => {
    const routerId = await storedRouter({ vrrp: { ...vrrp, vrid: 7 } });
    const res = await patch(routerId, {
      spec: {
        preferredAgent: 'node-b',
        vrrp: {
          virtualIPs: ['192.0.2.10/24', '192.0.2.99/24'],
          advertIntervalMs: 500,
          fenceHoldSeconds: 120,
        },
      },
    });
    expect(res.status, JSON.stringify(res.body.message)).toBe(200);
  });

  it('refuses an update that makes two priorities equal, naming the rule', async () => {
    const routerId = await storedRouter({ vrrp });
    const res = await patch(routerId, {
      spec: { agents: [{ name: NODE_A }, { name: 'node-b', priority: 200 }] },
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/distinct priorities rule/);
  });
});
