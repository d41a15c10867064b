import { describe, expect, it } from 'vitest';
import { ConfigError, envName, FLAGS, parseConfig, parseDuration, usage } from '../../src/config.ts';

const env = { POD_NAME: 'pod-1', POD_NAMESPACE: 'ops' };

function config(argv: string[], e: NodeJS.ProcessEnv = env) {
  const r = parseConfig(argv, e);
  if (r.help) throw new Error('unexpected help');
  return r.config;
}

describe('parseConfig', () => {
  it('applies the documented defaults', () => {
    const c = config([]);
    expect(c).toMatchObject({
      kubeconfig: undefined,
      namespace: undefined,
      metricsBindAddress: { host: undefined, port: 8080 },
      metricsSecure: true,
      metricsCertDir: '',
      healthProbeBindAddress: { host: undefined, port: 8081 },
      webhookBindAddress: { host: undefined, port: 9443 },
      certDir: '/tmp/k8s-webhook-server/serving-certs',
      webhook: true,
      leaderElect: true,
      leaderElectionNamespace: 'ops',
      leaderElectionId: 'harouter-operator',
      leaderElectionLeaseDurationMs: 15_000,
      leaderElectionRenewDeadlineMs: 10_000,
      leaderElectionRetryPeriodMs: 2_000,
      identity: 'pod-1',
      reporterServiceAccounts: ['harouter-system/harouter-reporter'],
      allowedUsers: [],
      allowedGroups: [],
      operatorServiceAccount: 'harouter-system/harouter-operator',
      requireNodeBinding: true,
      logLevel: 'info',
      workers: 4,
      vrrpReservedVrids: [],
    });
  });

  it('reads --vrrp-reserved-vrids as VRIDs and ranges, sorted and unique', () => {
    expect(config(['--vrrp-reserved-vrids=200, 1-3,2,254']).vrrpReservedVrids).toEqual([1, 2, 3, 200, 254]);
  });

  it('falls back to harouter-system and the host name without POD_* variables', () => {
    const c = config([], {});
    expect(c.leaderElectionNamespace).toBe('harouter-system');
    expect(c.identity.length).toBeGreaterThan(0);
  });

  it('reads HAROUTER_* variables and lets flags win', () => {
    const e = { ...env, HAROUTER_WORKERS: '8', HAROUTER_LOG_LEVEL: 'debug', HAROUTER_WEBHOOK: 'false' };
    expect(config([], e)).toMatchObject({ workers: 8, logLevel: 'debug', webhook: false });
    expect(config(['--workers=2', '--log-level', 'warn', '--webhook'], e)).toMatchObject({
      workers: 2,
      logLevel: 'warn',
      webhook: true,
    });
  });

  it('parses lists, bind addresses, booleans and durations', () => {
    const c = config([
      '--reporter-service-accounts= a/b , c/d.e ,',
      '--allowed-groups=g1,g2',
      '--metrics-bind-address=127.0.0.1:9090',
      '--health-probe-bind-address=0',
      '--webhook-bind-address=[::1]:9443',
      '--leader-elect=false',
      '--require-node-binding=0',
      '--leader-election-lease-duration=3s',
      '--leader-election-renew-deadline=2000ms',
      '--leader-election-retry-period=0.5s',
      '--namespace=tenant-a',
    ]);
    expect(c.reporterServiceAccounts).toEqual(['a/b', 'c/d.e']);
    expect(c.allowedGroups).toEqual(['g1', 'g2']);
    expect(c.metricsBindAddress).toMatchObject({ host: '127.0.0.1', port: 9090 });
    expect(c.healthProbeBindAddress).toBeNull();
    expect(c.webhookBindAddress).toMatchObject({ host: '::1', port: 9443 });
    expect(c.leaderElect).toBe(false);
    expect(c.requireNodeBinding).toBe(false);
    expect(c.leaderElectionLeaseDurationMs).toBe(3000);
    expect(c.leaderElectionRenewDeadlineMs).toBe(2000);
    expect(c.leaderElectionRetryPeriodMs).toBe(500);
    expect(c.namespace).toBe('tenant-a');
  });

  it.each([
    [['--workers=0'], /--workers: "0" must be at least 1/],
    [['--workers=two'], /--workers: "two" must be an integer/],
    [['--log-level=loud'], /--log-level/],
    [['--webhook=maybe'], /--webhook/],
    [['--metrics-bind-address=8080'], /--metrics-bind-address: "8080" must be host:port/],
    [['--webhook-bind-address=0'], /--webhook-bind-address/],
    [['--reporter-service-accounts=nons'], /--reporter-service-accounts: .* must be namespace\/name/],
    [['--operator-service-account=a/B'], /--operator-service-account/],
    [['--namespace=Bad_NS'], /--namespace/],
    [['--no-such-flag'], /unknown flag --no-such-flag/],
    [['--workers'], /needs a value/],
    [['--vrrp-reserved-vrids=0'], /--vrrp-reserved-vrids: .*must be VRIDs/],
    [['--vrrp-reserved-vrids=5-255'], /--vrrp-reserved-vrids/],
    [['--vrrp-reserved-vrids=9-3'], /--vrrp-reserved-vrids/],
    [['--vrrp-reserved-vrids=a'], /--vrrp-reserved-vrids/],
    [['positional'], /unexpected argument/],
    [['--leader-election-lease-duration=5s'], /greater than --leader-election-renew-deadline/],
    [['--leader-election-retry-period=9s'], /renew-deadline must be greater than 1.2/],
  ])('refuses %j with a message naming the flag', (argv, message) => {
    expect(() => parseConfig(argv, env)).toThrow(ConfigError);
    expect(() => parseConfig(argv, env)).toThrow(message);
  });

  it('names the environment variable when the bad value came from it', () => {
    expect(() => parseConfig([], { HAROUTER_WORKERS: '-1' })).toThrow(/HAROUTER_WORKERS/);
  });

  it('reports help', () => {
    expect(parseConfig(['--workers=1', '--help'], env)).toEqual({ help: true });
    expect(parseConfig(['-h'], env)).toEqual({ help: true });
  });
});

describe('usage', () => {
  it('lists every flag with its variable and default', () => {
    const text = usage(env);
    for (const f of FLAGS) {
      expect(text).toContain(`--${f.name}`);
      expect(text).toContain(envName(f.name));
    }
    expect(text).toContain('default :8080');
    expect(text).toContain('default POD_NAMESPACE, else harouter-system');
  });

  it('covers the flags of the team conventions', () => {
    const names = FLAGS.map((f) => f.name);
    for (const required of [
      'kubeconfig',
      'namespace',
      'metrics-bind-address',
      'health-probe-bind-address',
      'webhook-bind-address',
      'cert-dir',
      'webhook',
      'leader-elect',
      'leader-election-namespace',
      'leader-election-id',
      'identity',
      'reporter-service-accounts',
      'allowed-users',
      'allowed-groups',
      'operator-service-account',
      'require-node-binding',
      'log-level',
      'workers',
    ]) {
      expect(names).toContain(required);
    }
  });
});

describe('parseDuration', () => {
  it.each([
    ['15s', 15_000],
    ['1500ms', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['3', 3000],
    ['x', undefined],
    ['-1s', undefined],
  ])('%s -> %s', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });
});

describe('docs/operator.md', () => {
  it('documents every flag with its variable', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../docs/operator.md', import.meta.url), 'utf8');
    for (const f of FLAGS) {
      expect(doc).toMatch(new RegExp(`\\|\\s*\`--${f.name}\`\\s*\\|\\s*\`${envName(f.name)}\`\\s*\\|`));
    }
  });
});
