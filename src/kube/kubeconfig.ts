/**
 * How both programs reach the API server (the operator's `ApiTransport` and
 * harouterctl's report sender), read without @kubernetes/client-node on the
 * common paths: a kubeconfig with a token, a token file or a client certificate,
 * or the in-cluster service account. Loading client-node costs one to two seconds
 * of start-up on a busy node (every second between keepalived's transition and
 * the report is a second of failover) and about 80 MiB of resident memory (its
 * KubeConfig module pulls in every generated model), most of the operator's idle
 * budget. Anything else in a kubeconfig (exec and auth-provider plugins, proxies,
 * basic auth, several files in KUBECONFIG) falls back to client-node's
 * KubeConfig, imported only then, which handles it all.
 *
 * Every failure is a {@link KubeconfigError} whose message is safe to print: it
 * never quotes the file (a YAML parser's message would quote the token line).
 */
import { existsSync, readFileSync } from 'node:fs';
import type https from 'node:https';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';

/** A kubeconfig that cannot be used; the message names the problem, never the file's content. */
export class KubeconfigError extends Error {
  override name = 'KubeconfigError';
}

/** Where the in-cluster service account is mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A way to send requests: the server URL, the context's namespace, and fresh request options per attempt. */
export interface Connection {
  server: string;
  /** The kubeconfig context's namespace (or the service account's, in cluster). */
  namespace?: string;
  /** TLS options and the Authorization header; re-reads token files, so a rotated token is used. */
  requestOptions(): Promise<https.RequestOptions>;
}

/** The parts of one kubeconfig this loader understands, paths made absolute. */
export interface SimpleConfig {
  server: string;
  namespace?: string;
  ca?: { file?: string; data?: string };
  insecure?: boolean;
  servername?: string;
  token?: string;
  tokenFile?: string;
  cert?: { file?: string; data?: string };
  key?: { file?: string; data?: string };
}

type Named<T> = { name?: unknown } & T;
const SUPPORTED_CLUSTER_KEYS = new Set([
  'server',
  'certificate-authority',
  'certificate-authority-data',
  'insecure-skip-tls-verify',
  'tls-server-name',
  'extensions',
]);
const SUPPORTED_USER_KEYS = new Set([
  'token',
  'tokenFile',
  'client-certificate',
  'client-certificate-data',
  'client-key',
  'client-key-data',
  'extensions',
]);

function entry(list: unknown, name: unknown, field: string): Record<string, unknown> | undefined {
  if (!Array.isArray(list)) return undefined;
  const found = (list as Named<Record<string, unknown>>[]).find((item) => item?.name === name);
  const value = found?.[field];
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
}

const str = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);

/**
 * Reads a parsed kubeconfig's current context. Returns `'fallback'` when it uses
 * anything this loader does not handle (then client-node does). Pure.
 */
export function simpleConfig(doc: unknown, baseDir: string): SimpleConfig | 'fallback' {
  if (doc === null || typeof doc !== 'object')
    throw new KubeconfigError('the kubeconfig is not a YAML mapping');
  const config = doc as Record<string, unknown>;
  const contextName = config['current-context'];
  const context = entry(config.contexts, contextName, 'context');
  if (!context) throw new KubeconfigError('the kubeconfig has no current context');
  const cluster = entry(config.clusters, context.cluster, 'cluster');
  const user = entry(config.users, context.user, 'user') ?? {};
  if (!cluster || !str(cluster.server))
    throw new KubeconfigError('the kubeconfig has no current cluster with a server');
  if (Object.keys(cluster).some((k) => !SUPPORTED_CLUSTER_KEYS.has(k))) return 'fallback';
  if (Object.keys(user).some((k) => !SUPPORTED_USER_KEYS.has(k))) return 'fallback';
  const abs = (path: string | undefined) => (path && !isAbsolute(path) ? join(baseDir, path) : path);
  const pair = (file: unknown, data: unknown) => {
    const f = abs(str(file));
    const d = str(data);
    return f || d ? { ...(f ? { file: f } : {}), ...(d ? { data: d } : {}) } : undefined;
  };
  const result: SimpleConfig = { server: str(cluster.server) as string };
  const namespace = str(context.namespace);
  if (namespace) result.namespace = namespace;
  const ca = pair(cluster['certificate-authority'], cluster['certificate-authority-data']);
  if (ca) result.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) result.insecure = true;
  const servername = str(cluster['tls-server-name']);
  if (servername) result.servername = servername;
  const token = str(user.token);
  if (token) result.token = token;
  const tokenFile = abs(str(user.tokenFile));
  if (tokenFile) result.tokenFile = tokenFile;
  const cert = pair(user['client-certificate'], user['client-certificate-data']);
  if (cert) result.cert = cert;
  const key = pair(user['client-key'], user['client-key-data']);
  if (key) result.key = key;
  return result;
}

function material(source: { file?: string; data?: string } | undefined): Buffer | undefined {
  if (!source) return undefined;
  // kubectl prefers the file when both are set.
  return source.file ? readFileSync(source.file) : Buffer.from(source.data ?? '', 'base64');
}

/** A connection from a {@link SimpleConfig}: certificates read once, the token file on every attempt. */
export function simpleConnection(config: SimpleConfig): Connection {
  const ca = material(config.ca);
  const cert = material(config.cert);
  const key = material(config.key);
  return {
    server: config.server,
    ...(config.namespace ? { namespace: config.namespace } : {}),
    async requestOptions() {
      const token = config.tokenFile ? readFileSync(config.tokenFile, 'utf8').trim() : config.token;
      return {
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(config.insecure ? { rejectUnauthorized: false } : {}),
        ...(config.servername ? { servername: config.servername } : {}),
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      };
    },
  };
}

/** The in-cluster service account, as client-go's rest.InClusterConfig reads it. */
export function inClusterConfig(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): SimpleConfig {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const namespaceFile = join(dir, 'namespace');
  const namespace = existsSync(namespaceFile) ? readFileSync(namespaceFile, 'utf8').trim() : undefined;
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: { file: join(dir, 'ca.crt') },
    tokenFile: join(dir, 'token'),
    ...(namespace ? { namespace } : {}),
  };
}

/**
 * A KubeConfig already loaded by client-node, as a connection: what the fallback
 * below uses, and how tests and tools that hold a KubeConfig hand it to
 * `ApiTransport`. Uses the object's own methods only (no import of client-node).
 */
export function kubeConfigConnection(kc: KubeConfig): Connection {
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new KubeconfigError('the kubeconfig has no current cluster with a server');
  const namespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  return {
    server: cluster.server,
    ...(namespace ? { namespace } : {}),
    async requestOptions() {
      const options: https.RequestOptions = {};
      try {
        await kc.applyToHTTPSOptions(options);
      } catch (error) {
        throw new KubeconfigError(
          `cannot read the kubeconfig user's credentials: ${describePluginError(error)}`,
        );
      }
      return options;
    },
  };
}

/**
 * A failure of client-node's credential path (exec and auth-provider plugins)
 * as text safe to print: no part of the plugin's output. client-node rejects
 * with the plugin's stderr as the message when it exits non-zero, and with
 * `JSON.parse`'s error, which quotes the first characters of stdout (a bare
 * token, say), when stdout is not an ExecCredential. A system error (the plugin
 * cannot be started, a file cannot be read) is named by its call, path and
 * code, all from the user's own kubeconfig; anything else by its kind only.
 */
function describePluginError(error: unknown): string {
  const e = error as { code?: unknown; syscall?: unknown; path?: unknown };
  if (typeof e?.code === 'string' && typeof e.syscall === 'string') {
    const path = typeof e.path === 'string' && !e.syscall.includes(e.path) ? ` ${e.path}` : '';
    return `${e.syscall}${path}: ${e.code}`;
  }
  return error instanceof SyntaxError
    ? 'the credential plugin printed something that is not an ExecCredential (its output is not logged)'
    : 'the credential plugin failed (its output is not logged)';
}

/** client-node's KubeConfig, imported only now, for what the simple loader does not handle. */
async function clientNodeConnection(load: (kc: KubeConfig) => void): Promise<Connection> {
  const clientNode = await import('@kubernetes/client-node');
  const kc = new clientNode.KubeConfig();
  load(kc);
  return kubeConfigConnection(kc);
}

/**
 * Loads the connection in controller-runtime's order: `--kubeconfig`, else
 * `$KUBECONFIG`, else the in-cluster service account, else `~/.kube/config`.
 * Local only; then reads the credentials once, so that a missing or unreadable
 * file is a {@link KubeconfigError} (a usage error), never a retried network failure.
 */
export async function loadConnection(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  serviceAccountDir = SERVICE_ACCOUNT_DIR,
): Promise<Connection> {
  let connection: Connection;
  try {
    const file = path ?? env.KUBECONFIG;
    if (file === undefined || file === '') {
      if (env.KUBERNETES_SERVICE_HOST && existsSync(join(serviceAccountDir, 'token'))) {
        connection = simpleConnection(inClusterConfig(env, serviceAccountDir));
        await connection.requestOptions();
        return connection;
      }
    }
    const chosen = file || join(homedir(), '.kube', 'config');
    if (path === undefined && chosen.includes(':')) {
      // Several files in $KUBECONFIG to merge: client-node's merge rules. `--kubeconfig`
      // names one file, as kubectl's does (never a fallback to other sources).
      connection = await clientNodeConnection((kc) => kc.loadFromDefault());
    } else {
      const simple = simpleConfig(await parseKubeconfig(readFileSync(chosen, 'utf8')), dirname(chosen));
      connection =
        simple === 'fallback'
          ? await clientNodeConnection((kc) => kc.loadFromFile(chosen))
          : simpleConnection(simple);
    }
    await connection.requestOptions();
    return connection;
  } catch (error) {
    if (error instanceof KubeconfigError) throw error;
    throw new KubeconfigError(`cannot use the kubeconfig: ${describeLoadError(error)}`);
  }
}

/**
 * Parses kubeconfig text as YAML (JSON included). A syntax error becomes a
 * {@link KubeconfigError} that names the parser's code and position only: the
 * parser's own message quotes the offending line, which may hold a token.
 * Warnings (an unknown tag, say) are not printed for the same reason.
 */
export async function parseKubeconfig(text: string): Promise<unknown> {
  // Imported only here: in a Pod (the service account) the operator never loads a YAML parser (11 MiB).
  const { parseDocument } = await import('yaml');
  const doc = parseDocument(text, { logLevel: 'silent' });
  const [first] = doc.errors;
  if (first) throw new KubeconfigError(`the kubeconfig is not valid YAML: ${yamlErrorWhere(first)}`);
  return doc.toJS();
}

function yamlErrorWhere(error: { code: string; linePos?: readonly { line: number; col: number }[] }): string {
  const at = error.linePos?.[0];
  return at ? `${error.code} at line ${at.line}, column ${at.col}` : error.code;
}

/**
 * A load failure as text safe to print: file errors by their message (code
 * and the user's own path), YAML errors from client-node's parser (js-yaml,
 * whose message and reason may quote the file) by position only, anything
 * else by its message.
 */
function describeLoadError(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown; mark?: { line?: unknown; column?: unknown } };
  if (e?.name === 'YAMLException') {
    const line = typeof e.mark?.line === 'number' ? e.mark.line + 1 : '?';
    const column = typeof e.mark?.column === 'number' ? e.mark.column + 1 : '?';
    return `the kubeconfig is not valid YAML: syntax error at line ${line}, column ${column}`;
  }
  return error instanceof Error ? error.message : String(error);
}
