import { execFile } from 'node:child_process';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { KubeconfigError, loadConnection } from '../../src/kube/kubeconfig.ts';
import { NODE, REPO } from '../support/paths.ts';

/**
 * issue 13: a kubeconfig's content never reaches a log. The YAML parsers quote
 * the offending line in their messages and warnings; harouterctl must print the
 * parser's code and position only. Runs the real binary so that process-level
 * warnings on stderr are seen too.
 */
const CLI = join(REPO, 'bin', 'harouterctl.js');
const ROUTER = '6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12';
const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.SECRET-TOKEN-DO-NOT-LOG.c2lnbmF0dXJl';

async function harouterctl(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(NODE, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), ...env },
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

async function kubeconfigFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hctl-leak-'));
  const path = join(dir, name);
  await writeFile(path, text, { mode: 0o600 });
  return path;
}

const REPORT = ['report', '--router', ROUTER, '--agent', 'node-a', 'INSTANCE', 'VI_1', 'MASTER', '100'];

const GOOD_START = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;

// Each case starts the real binary (1-4 s on a loaded machine).
describe('a malformed kubeconfig is reported without its content', { timeout: 30_000 }, () => {
  it.each([
    [
      'a nested mapping on the token line',
      `${GOOD_START}users:\n- name: u\n  user:\n    token: ${TOKEN}: x: y\n`,
    ],
    ['an unterminated quote', `${GOOD_START}users:\n- name: u\n  user:\n    token: "${TOKEN}\n`],
    ['truncated JSON', `{"users": [{"name": "u", "user": {"token": "${TOKEN}"`],
    [
      'a bad indentation after the token',
      `${GOOD_START}users:\n- name: u\n  user:\n    token: ${TOKEN}\n   bad: [\n`,
    ],
  ])('%s: exit 2, the parser code and position, never the token', async (_, text) => {
    const path = await kubeconfigFile('config', text);
    const { code, output } = await harouterctl(['--kubeconfig', path, ...REPORT]);
    expect(code).toBe(2);
    expect(output).toMatch(/the kubeconfig is not valid YAML: [A-Z_]+ at line \d+, column \d+/);
    expect(output).not.toContain('SECRET-TOKEN');
  });

  it('through client-node (several files in KUBECONFIG): position only, never the token', async () => {
    const bad = await kubeconfigFile(
      'bad',
      `${GOOD_START}users:\n- name: u\n  user:\n    token: ${TOKEN}: x: y\n`,
    );
    const other = await kubeconfigFile('other', GOOD_START);
    const { code, output } = await harouterctl(REPORT, { KUBECONFIG: `${bad}:${other}` });
    expect(code).toBe(2);
    expect(output).toMatch(/the kubeconfig is not valid YAML: syntax error at line \d+, column \d+/);
    expect(output).not.toContain('SECRET-TOKEN');
  });

  it('a YAML warning (an unknown tag on the token) is not printed with its line', async () => {
    const path = await kubeconfigFile(
      'config',
      `${GOOD_START}users:\n- name: u\n  user:\n    token: !weird ${TOKEN}\n`,
    );
    const { code, output } = await harouterctl(['--kubeconfig', path, '--dry-run', ...REPORT]);
    expect(code).toBe(0);
    expect(output).toContain(`"routerId": "${ROUTER}"`);
    expect(output).not.toContain('SECRET-TOKEN');
  });
});

/**
 * issue 23, item 12: an exec credential plugin's output never reaches a log.
 * client-node rejects with `JSON.parse`'s error (which quotes the start of
 * stdout, a bare token say) or with the plugin's stderr as the message.
 */
describe('an exec credential plugin is reported without its output', { timeout: 30_000 }, () => {
  async function execKubeconfig(script: string): Promise<string> {
    const plugin = await kubeconfigFile('plugin.sh', `#!/bin/sh\n${script}\n`);
    await chmod(plugin, 0o700);
    return kubeconfigFile(
      'config',
      `${GOOD_START}users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ${plugin}\n      interactiveMode: Never\n`,
    );
  }

  async function loadError(path: string): Promise<Error> {
    const error = await loadConnection(path, {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KubeconfigError);
    return error as Error;
  }

  it.each([
    ['a bare token on stdout', `echo '${TOKEN}'`, /printed something that is not an ExecCredential/],
    ['a token-like word on stdout', `echo 'SECRET-TOKEN-DO-NOT-LOG'`, /not an ExecCredential/],
    ['its stderr on failure', `echo '${TOKEN}' >&2; exit 1`, /the credential plugin failed/],
  ])('%s: a KubeconfigError naming the kind of failure only', async (_, script, expected) => {
    const error = await loadError(await execKubeconfig(script));
    expect(error.message).toMatch(expected);
    expect(`${error.message} ${error.stack}`).not.toContain('SECRET');
    expect(`${error.message}`).not.toContain('eyJ');
  });

  it('a plugin that cannot be started: the command and the code', async () => {
    const path = await kubeconfigFile(
      'config',
      `${GOOD_START}users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /nonexistent/plugin\n`,
    );
    expect((await loadError(path)).message).toMatch(/spawn \/nonexistent\/plugin: ENOENT/);
  });
});
