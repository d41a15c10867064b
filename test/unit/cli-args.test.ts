import { describe, expect, it } from 'vitest';
import {
  buildReport,
  DEFAULTS,
  parseCommandLine,
  parseDuration,
  type ReportCommand,
} from '../../src/cli/args.ts';
import { resolveNamespace } from '../../src/report/namespace.ts';
import { UsageError } from '../../src/report/usage-error.ts';

const ROUTER = '6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12';
const env = { NODE_NAME: 'node-a' };

function report(argv: string[], environment: Record<string, string | undefined> = env): ReportCommand {
  const command = parseCommandLine(argv, environment);
  if (command.command !== 'report') throw new Error(`expected a report, got ${command.command}`);
  return command;
}

describe('parseCommandLine', () => {
  it('reads a keepalived notify command line with the defaults', () => {
    expect(report(['report', '--router', ROUTER, 'INSTANCE', 'VI_1', 'MASTER', '100'])).toEqual({
      command: 'report',
      router: ROUTER,
      agent: 'node-a',
      state: 'Primary',
      priority: 100,
      message: 'keepalived INSTANCE VI_1 MASTER',
      requestTimeoutMs: DEFAULTS.requestTimeoutMs,
      deadlineMs: DEFAULTS.deadlineMs,
      maxAttempts: DEFAULTS.maxAttempts,
      logLevel: 'info',
      dryRun: false,
    });
  });

  it('takes flags in any order with keepalived arguments after them', () => {
    const command = report([
      'report',
      `--router=${ROUTER}`,
      '--agent',
      'node-b',
      '-n',
      'routers',
      '--message',
      'failover drill',
      '--timeout',
      '750ms',
      '--deadline',
      '1m',
      '--max-attempts',
      '3',
      '--kubeconfig',
      '/etc/harouter/kubeconfig',
      'GROUP',
      'G1',
      'DELETED',
    ]);
    expect(command).toMatchObject({
      agent: 'node-b',
      namespace: 'routers',
      state: 'Stopped',
      message: 'failover drill',
      requestTimeoutMs: 750,
      deadlineMs: 60_000,
      maxAttempts: 3,
      kubeconfig: '/etc/harouter/kubeconfig',
    });
    expect(command.priority).toBeUndefined();
  });

  it('accepts --state instead of keepalived arguments, and --priority', () => {
    expect(report(['report', '--router', ROUTER, '--state', 'Fault', '--priority', '0'])).toMatchObject({
      state: 'Fault',
      priority: 0,
    });
  });

  it('takes the namespace from POD_NAMESPACE when --namespace is absent, and the flag wins', () => {
    const withEnv = { NODE_NAME: 'node-a', POD_NAMESPACE: 'from-env' };
    expect(report(['report', '--router', ROUTER, '--state', 'Backup'], withEnv).namespace).toBe('from-env');
    expect(report(['report', '--router', ROUTER, '--state', 'Backup', '-n', 'flag'], withEnv).namespace).toBe(
      'flag',
    );
    expect(report(['report', '--router', ROUTER, '--state', 'Backup']).namespace).toBeUndefined();
  });

  it('leaves out the default message when the instance name is not printable', () => {
    expect(
      report(['report', '--router', ROUTER, 'INSTANCE', 'VI\n1', 'BACKUP', '90']).message,
    ).toBeUndefined();
  });

  it.each([
    [['--help'], 'main'],
    [['report', '--help'], 'report'],
    [['help', 'report'], 'report'],
    [['report', '-h', '--router', 'not-a-uuid'], 'report'],
  ])('asks for help with %j', (argv, topic) => {
    expect(parseCommandLine(argv, {})).toEqual({ command: 'help', topic });
  });

  it.each([
    [[], /missing command/],
    [['status'], /unknown command/],
    [['report', '--router', ROUTER, '--bogus', 'INSTANCE', 'VI_1', 'MASTER', '1'], /bogus/],
    [['report', 'INSTANCE', 'VI_1', 'MASTER', '1'], /--router <uuid> is required/],
    [['report', '--router', ROUTER.toUpperCase(), 'INSTANCE', 'VI_1', 'MASTER', '1'], /--router: .*UUID/],
    [['report', '--router', ROUTER], /missing state/],
    [['report', '--router', ROUTER, 'INSTANCE', 'VI_1', 'UP', '1'], /MASTER, BACKUP/],
    [['report', '--router', ROUTER, '--state', 'Primary', 'INSTANCE', 'VI_1', 'BACKUP', '1'], /disagrees/],
    [['report', '--router', ROUTER, '--state', 'Active'], /--state must be one of/],
    [['report', '--router', ROUTER, '--state', 'Primary', '--agent', 'Node_A'], /--agent.*DNS-1123/],
    [
      ['report', '--router', ROUTER, '--state', 'Primary', '--message', 'a\u001b[31mb'],
      /--message: .*printable/,
    ],
    [['report', '--router', ROUTER, '--state', 'Primary', '--message', 'x'.repeat(257)], /--message: .*256/],
    [['report', '--router', ROUTER, '--state', 'Primary', '-n', 'Bad_NS'], /--namespace/],
    [['report', '--router', ROUTER, '--state', 'Primary', '--timeout', '0s'], /--timeout/],
    [['report', '--router', ROUTER, '--state', 'Primary', '--deadline', '5 s'], /--deadline/],
    [['report', '--router', ROUTER, '--state', 'Primary', '--max-attempts', '0'], /--max-attempts/],
    [['report', '--router', ROUTER, '--state', 'Primary', '--priority', '300'], /--priority/],
    [['report', '--router', ROUTER, '--state', 'Primary', '--log-level', 'loud'], /--log-level/],
    [['report', '--router', ROUTER, '--state', 'Primary', '--agent', 'a'.repeat(217)], /--agent/],
  ])('refuses %j', (argv, error) => {
    expect(() => parseCommandLine(argv, env)).toThrow(UsageError);
    expect(() => parseCommandLine(argv, env)).toThrow(error);
  });

  it('requires an agent when NODE_NAME is unset or empty', () => {
    expect(() => parseCommandLine(['report', '--router', ROUTER, '--state', 'Primary'], {})).toThrow(
      /NODE_NAME/,
    );
    expect(() =>
      parseCommandLine(['report', '--router', ROUTER, '--state', 'Primary'], { NODE_NAME: '' }),
    ).toThrow(/NODE_NAME/);
  });
});

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['5s', 5000],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['2.5', 2500],
    ['0.5s', 500],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '0', '0ms', '5 s', '5x', 's', '-1s', '5s5', '1e3'])('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('resolveNamespace', () => {
  it('prefers the explicit value, then the context, then the service account file, then default', () => {
    expect(resolveNamespace('a', 'b', 'c')).toBe('a');
    expect(resolveNamespace(undefined, 'b', 'c')).toBe('b');
    expect(resolveNamespace(undefined, '', 'c\n')).toBe('c');
    expect(resolveNamespace(undefined, undefined, undefined)).toBe('default');
  });

  it('refuses a malformed namespace from the kubeconfig', () => {
    expect(() => resolveNamespace(undefined, 'Not Valid', undefined)).toThrow(UsageError);
  });
});

describe('buildReport', () => {
  it('names the object <routerId>.<agent> and fills the spec', () => {
    const command = report(['report', '--router', ROUTER, 'INSTANCE', 'VI_1', 'BACKUP', '90']);
    expect(buildReport(command, 'routers', '2026-11-25T12:00:00.123456789Z')).toEqual({
      apiVersion: 'harouter.dev/v1alpha1',
      kind: 'HARouterState',
      metadata: { name: `${ROUTER}.node-a`, namespace: 'routers' },
      spec: {
        routerId: ROUTER,
        agent: 'node-a',
        state: 'Backup',
        observedAt: '2026-11-25T12:00:00.123456789Z',
        priority: 90,
        message: 'keepalived INSTANCE VI_1 BACKUP',
      },
    });
  });

  it('refuses a malformed observedAt', () => {
    const command = report(['report', '--router', ROUTER, '--state', 'Primary']);
    expect(() => buildReport(command, 'default', '2026-02-30T00:00:00Z')).toThrow(UsageError);
  });
});
