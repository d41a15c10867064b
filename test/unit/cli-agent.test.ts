import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AGENT_DEFAULTS, DEFAULT_FIFO, KEEPALIVED_DEFAULTS } from '../../src/agent/defaults.ts';
import { parseAgentCommandLine } from '../../src/cli/agent-args.ts';
import { main } from '../../src/cli/main.ts';
import { UsageError } from '../../src/report/usage-error.ts';

const R1 = '0b6f4f64-2d0e-4c55-8f43-3c2b8e1a9d70';

async function run(argv: string[], env: Record<string, string | undefined> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const code = await main(argv, env, { stdout, stderr });
  return { code, stdout: out, stderr: err };
}

// The first run through main loads the agent's modules: seconds on a loaded machine.
describe('harouterctl agent flags', { timeout: 30_000 }, () => {
  it('takes the contract’s defaults and NODE_NAME / POD_NAMESPACE', () => {
    const parsed = parseAgentCommandLine([], { NODE_NAME: 'node-a', POD_NAMESPACE: 'routers' });
    expect(parsed).toMatchObject({
      command: 'agent',
      logLevel: 'info',
      config: {
        fifo: DEFAULT_FIFO,
        stateDir: AGENT_DEFAULTS.stateDir,
        agent: 'node-a',
        namespace: 'routers',
        metricsBind: { host: undefined, port: 8090 },
        concurrency: AGENT_DEFAULTS.concurrency,
      },
    });
  });

  it('reads every flag', () => {
    const parsed = parseAgentCommandLine(
      [
        '--fifo=/run/k/f',
        '--fifo-group=2000',
        '--state-dir=/var/s',
        `--instance=VI_1=${R1}`,
        `--instance=VI_2=team/${R1}`,
        '--instances=/etc/map.yaml',
        '-n',
        'ns1',
        '--agent=node-b',
        '--kubeconfig=/k',
        '--metrics-bind-address=0',
        '--max-in-flight=8',
        '--timeout=2s',
        '--log-level=debug',
      ],
      {},
    );
    expect(parsed).toMatchObject({
      logLevel: 'debug',
      config: {
        fifo: '/run/k/f',
        fifoGroup: 2000,
        stateDir: '/var/s',
        instancesFile: '/etc/map.yaml',
        namespace: 'ns1',
        agent: 'node-b',
        kubeconfig: '/k',
        metricsBind: null,
        concurrency: 8,
        requestTimeoutMs: 2000,
      },
    });
    expect(parsed.command === 'agent' && [...parsed.config.instances.keys()]).toEqual(['VI_1', 'VI_2']);
  });

  it('renders nothing without --keepalived-config-dir; with it, takes the keepalived defaults', () => {
    const plain = parseAgentCommandLine(['--agent=a'], {});
    expect(plain.command === 'agent' && plain.config.keepalived).toBeUndefined();
    expect(
      parseAgentCommandLine(['--agent=a', '--keepalived-config-dir=/etc/keepalived/harouter'], {}),
    ).toMatchObject({
      config: {
        keepalived: {
          configDir: '/etc/keepalived/harouter',
          fenceDir: KEEPALIVED_DEFAULTS.fenceDir,
          pidFile: KEEPALIVED_DEFAULTS.pidFile,
          run: false,
        },
      },
    });
    expect(
      parseAgentCommandLine(
        [
          '--agent=a',
          '--keepalived-config-dir=/k',
          '--fence-dir=/f',
          '--keepalived-pid-file=/run/harouter/keepalived.pid',
          '--run-keepalived',
        ],
        {},
      ),
    ).toMatchObject({
      config: {
        keepalived: { configDir: '/k', fenceDir: '/f', pidFile: '/run/harouter/keepalived.pid', run: true },
      },
    });
  });

  it.each([
    [[], 'NODE_NAME'],
    [['--agent=a', '--run-keepalived'], '--run-keepalived needs --keepalived-config-dir'],
    [['--agent=a', '--fence-dir=/f'], '--fence-dir needs --keepalived-config-dir'],
    [['--agent=a', '--keepalived-config-dir=etc/k'], '--keepalived-config-dir must be an absolute path'],
    [
      ['--agent=a', '--keepalived-config-dir=/k', '--fence-dir=/f "x'],
      '--fence-dir must be an absolute path',
    ],
    [['--agent=a', '--keepalived-config-dir=/k/../etc'], 'no ".."'],
    [['--agent=Node_A'], 'DNS-1123'],
    [['--agent=a', '--instance=VI_1'], '--instance #1'],
    [['--agent=a', '--fifo=relative'], 'absolute'],
    [['--agent=a', '--fifo-group=agents'], '--fifo-group must be a numeric group id'],
    [['--agent=a', '--metrics-bind-address=nope'], '--metrics-bind-address'],
    [['--agent=a', '--max-in-flight=0'], '--max-in-flight'],
    [['--agent=a', '--unknown'], 'Unknown option'],
    [['--agent=a', 'extra'], 'positional'],
  ])('refuses %j', (argv, text) => {
    expect(() => parseAgentCommandLine(argv, {})).toThrow(UsageError);
    expect(() => parseAgentCommandLine(argv, {})).toThrow(text);
  });

  it('shows the global_defs line and every flag in --help', async () => {
    const { code, stdout } = await run(['agent', '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain(`vrrp_notify_fifo ${DEFAULT_FIFO}`);
    for (const flag of [
      '--fifo',
      '--fifo-group',
      '--instance ',
      '--instances',
      '--state-dir',
      '--metrics-bind-address',
      '--agent',
      '--keepalived-config-dir',
      '--fence-dir',
      '--keepalived-pid-file',
      '--run-keepalived',
      'include <dir>/harouter-global.conf',
    ]) {
      expect(stdout).toContain(flag);
    }
  });

  it('exits 2 naming the FIFO’s path and the rule when the FIFO is refused, before any network', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-cli-'));
    chmodSync(dir, 0o700);
    const path = join(dir, 'notify.fifo');
    writeFileSync(path, '');
    const { code, stderr } = await run([
      'agent',
      `--fifo=${path}`,
      '--agent=node-a',
      '--kubeconfig=/nonexistent',
      `--state-dir=${join(dir, 'state')}`,
    ]);
    expect(code).toBe(2);
    const line = JSON.parse(stderr.trim().split('\n').at(-1) ?? '{}');
    expect(line.problem).toBe(`refusing the FIFO ${path}: it is not a FIFO`);
  });

  it('exits 2 for a bad kubeconfig once the FIFO passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-cli-'));
    chmodSync(dir, 0o700);
    const { code, stderr } = await run([
      'agent',
      `--fifo=${join(dir, 'notify.fifo')}`,
      '--agent=node-a',
      `--kubeconfig=${join(dir, 'missing')}`,
      `--state-dir=${join(dir, 'state')}`,
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('cannot use the kubeconfig');
  });
});
