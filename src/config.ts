/**
 * The operator's configuration: command-line flags and `HAROUTER_*` environment
 * variables (a flag wins over its variable), validated with zod. `--help` lists
 * every flag with its variable and default. Errors name the flag and exit 2.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { type BindAddress, parseBind, parseDuration } from './flag-values.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';
import { serviceAccountUsername, splitList } from './webhook/config.ts';

export { type BindAddress, parseDuration };

/** The parsed flags, one field per flag (see `FLAGS` for defaults and meaning). */
export interface OperatorConfig {
  kubeconfig: string | undefined;
  /** Watched namespace for HARouters, reports, Services and EndpointSlices; undefined: all. */
  namespace: string | undefined;
  metricsBindAddress: BindAddress | null;
  /** Serve metrics over HTTPS to callers the API server authenticates and authorizes. */
  metricsSecure: boolean;
  /** `tls.crt`/`tls.key` for the secure metrics (reloaded when they change); empty: a self-signed certificate made at start. */
  metricsCertDir: string;
  healthProbeBindAddress: BindAddress | null;
  webhookBindAddress: BindAddress;
  certDir: string;
  /** PEM file of the CA of the API server's webhook client certificate; empty: no client certificate asked. */
  webhookClientCa: string;
  webhook: boolean;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  leaderElectionLeaseDurationMs: number;
  leaderElectionRenewDeadlineMs: number;
  leaderElectionRetryPeriodMs: number;
  identity: string;
  reporterServiceAccounts: string[];
  allowedUsers: string[];
  allowedGroups: string[];
  operatorServiceAccount: string;
  requireNodeBinding: boolean;
  logLevel: LogLevel;
  workers: number;
  /** Full relist period of every informer. */
  resyncPeriodMs: number;
  /** Timeout of each API request. */
  requestTimeoutMs: number;
  /** Requests to the API server in flight at once (kept-alive connections). */
  kubeApiMaxInflight: number;
  /** Sustained requests per second to the API server (0: unlimited). */
  kubeApiQps: number;
  /** Requests allowed at once above the QPS. */
  kubeApiBurst: number;
  /** VRIDs the operator never allocates (sorted, unique); a VRID set by hand in `spec.vrrp.vrid` may still use them. */
  vrrpReservedVrids: number[];
}

/** Raised for bad flags or values: print the message and the usage hint, exit 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const bind = (allowDisable: boolean) =>
  z.string().transform((value, ctx) => {
    try {
      return parseBind(value, allowDisable);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const duration = (min: number) =>
  z.string().transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms < min) {
      ctx.addIssue({ code: 'custom', message: `must be a duration like 15s or 500ms, at least ${min} ms` });
      return z.NEVER;
    }
    return ms;
  });

const serviceAccountRef = z.string().refine(
  (v) => {
    try {
      serviceAccountUsername(v);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be namespace/name' },
);

const list = z.string().transform(splitList);

/** `1-10,200`: VRIDs and inclusive ranges, each 1-254. */
const vridList = list.transform((items, ctx) => {
  const vrids = new Set<number>();
  for (const item of items) {
    const match = /^([0-9]{1,3})(?:-([0-9]{1,3}))?$/.exec(item);
    const from = Number(match?.[1]);
    const to = match?.[2] === undefined ? from : Number(match[2]);
    if (!match || from < 1 || to > 254 || from > to) {
      ctx.addIssue({ code: 'custom', message: 'must be VRIDs (1-254) or ranges like 1-10, comma-separated' });
      return z.NEVER;
    }
    for (let vrid = from; vrid <= to; vrid++) vrids.add(vrid);
  }
  return [...vrids].sort((a, b) => a - b);
});

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be an integer')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

interface FlagSpec {
  name: string;
  /** Help text. */
  help: string;
  /** Default shown in --help (and applied when unset); a function reads the environment. */
  default: string | ((env: NodeJS.ProcessEnv) => string);
  /** Shown in --help instead of the computed default. */
  defaultText?: string;
  boolean?: boolean;
  schema: z.ZodType;
  key: keyof OperatorConfig;
}

/** Every flag of the operator (TEAM conventions and the contract). */
export const FLAGS: readonly FlagSpec[] = [
  {
    name: 'kubeconfig',
    help: 'Path to a kubeconfig. Default: KUBECONFIG, then the in-cluster service account, then ~/.kube/config.',
    default: '',
    schema: z.string(),
    key: 'kubeconfig',
  },
  {
    name: 'namespace',
    help: 'Namespace to watch for HARouters, HARouterStates, Services and EndpointSlices (empty: all).',
    default: '',
    schema: z
      .string()
      .refine((v) => v === '' || (v.length <= 63 && DNS_LABEL.test(v)), 'must be a namespace name'),
    key: 'namespace',
  },
  {
    name: 'metrics-bind-address',
    help: 'Address of the Prometheus metrics endpoint (/metrics); 0 disables it.',
    default: ':8080',
    schema: bind(true),
    key: 'metricsBindAddress',
  },
  {
    name: 'metrics-secure',
    help:
      'Serve /metrics over HTTPS, only to callers the API server authenticates (TokenReview) and authorizes ' +
      'for get on the non-resource URL /metrics (SubjectAccessReview). false: plain HTTP (local mode, tests).',
    default: 'true',
    boolean: true,
    schema: bool,
    key: 'metricsSecure',
  },
  {
    name: 'metrics-cert-dir',
    help: 'Directory holding tls.crt and tls.key for the secure metrics, reloaded when they change (empty: a self-signed certificate).',
    default: '',
    schema: z.string(),
    key: 'metricsCertDir',
  },
  {
    name: 'health-probe-bind-address',
    help: 'Address of the probes (/healthz, /readyz); 0 disables them.',
    default: ':8081',
    schema: bind(true),
    key: 'healthProbeBindAddress',
  },
  {
    name: 'webhook-bind-address',
    help: 'Address of the admission webhook (HTTPS, /validate).',
    default: ':9443',
    schema: bind(false),
    key: 'webhookBindAddress',
  },
  {
    name: 'cert-dir',
    help: 'Directory holding the webhook serving certificate tls.crt and key tls.key (reloaded on change).',
    default: '/tmp/k8s-webhook-server/serving-certs',
    schema: z.string().min(1),
    key: 'certDir',
  },
  {
    name: 'webhook-client-ca',
    help:
      "PEM file of the CA that signs the API server's client certificate for webhooks (kube-apiserver's " +
      '--admission-control-config-file, WebhookAdmissionConfiguration). When set, the webhook requires and ' +
      'verifies a client certificate: any other caller is refused at the TLS handshake. Empty: any caller.',
    default: '',
    schema: z.string(),
    key: 'webhookClientCa',
  },
  {
    name: 'webhook',
    help: 'Serve the admission webhook.',
    default: 'true',
    boolean: true,
    schema: bool,
    key: 'webhook',
  },
  {
    name: 'leader-elect',
    help: 'Elect a leader with a Lease; only the leader reconciles. Disable only with a single replica.',
    default: 'true',
    boolean: true,
    schema: bool,
    key: 'leaderElect',
  },
  {
    name: 'leader-election-namespace',
    help: "The operator's namespace: the leader election Lease and the VRID claim Leases live there.",
    default: (env) => env.POD_NAMESPACE || 'harouter-system',
    defaultText: 'POD_NAMESPACE, else harouter-system',
    schema: z.string().refine((v) => v.length <= 63 && DNS_LABEL.test(v), 'must be a namespace name'),
    key: 'leaderElectionNamespace',
  },
  {
    name: 'leader-election-id',
    help: 'Name of the leader election Lease.',
    default: 'harouter-operator',
    schema: z.string().refine((v) => v.length <= 253 && DNS_SUBDOMAIN.test(v), 'must be a DNS subdomain'),
    key: 'leaderElectionId',
  },
  {
    name: 'leader-election-lease-duration',
    help: 'How long followers wait, from the last renewal they saw, before taking the Lease over.',
    default: '15s',
    schema: duration(1000),
    key: 'leaderElectionLeaseDurationMs',
  },
  {
    name: 'leader-election-renew-deadline',
    help: 'How long the leader keeps retrying to renew before it gives up leading (and exits).',
    default: '10s',
    schema: duration(100),
    key: 'leaderElectionRenewDeadlineMs',
  },
  {
    name: 'leader-election-retry-period',
    help: 'Interval between attempts to acquire or renew the Lease.',
    default: '2s',
    schema: duration(10),
    key: 'leaderElectionRetryPeriodMs',
  },
  {
    name: 'identity',
    help: "This replica's identity in the Lease and in Events.",
    default: (env) => env.POD_NAME || hostname(),
    defaultText: 'POD_NAME, else the host name',
    schema: z.string().min(1).max(253),
    key: 'identity',
  },
  {
    name: 'reporter-service-accounts',
    help: 'Comma-separated namespace/name of the service accounts allowed to report states.',
    default: 'harouter-system/harouter-reporter',
    schema: list.pipe(z.array(serviceAccountRef)),
    key: 'reporterServiceAccounts',
  },
  {
    name: 'allowed-users',
    help: 'Comma-separated extra user names allowed to report states.',
    default: '',
    schema: list,
    key: 'allowedUsers',
  },
  {
    name: 'allowed-groups',
    help: 'Comma-separated extra groups allowed to report states.',
    default: '',
    schema: list,
    key: 'allowedGroups',
  },
  {
    name: 'operator-service-account',
    help: "The operator's own service account (namespace/name); it may delete reports.",
    default: 'harouter-system/harouter-operator',
    schema: serviceAccountRef,
    key: 'operatorServiceAccount',
  },
  {
    name: 'require-node-binding',
    help: 'Deny reporters whose token is not bound to a node.',
    default: 'true',
    boolean: true,
    schema: bool,
    key: 'requireNodeBinding',
  },
  {
    name: 'vrrp-reserved-vrids',
    help: 'Comma-separated VRIDs or ranges (1-10,200) never allocated to a HARouter with spec.vrrp (used outside the operator).',
    default: '',
    schema: vridList,
    key: 'vrrpReservedVrids',
  },
  {
    name: 'log-level',
    help: `Log level: ${LOG_LEVELS.join(', ')}.`,
    default: 'info',
    schema: z.enum(LOG_LEVELS),
    key: 'logLevel',
  },
  {
    name: 'workers',
    help: 'Number of concurrent reconcile workers (1-64).',
    default: '4',
    schema: z
      .string()
      .regex(/^\d+$/, 'must be an integer')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be at least 1').max(64, 'must be at most 64')),
    key: 'workers',
  },
  {
    name: 'resync-period',
    help: 'Period of the full relist of every watched kind (level-based safety net).',
    default: '10m',
    schema: duration(1000),
    key: 'resyncPeriodMs',
  },
  {
    name: 'request-timeout',
    help: 'Timeout of each Kubernetes API request (not of watches).',
    default: '30s',
    schema: duration(100),
    key: 'requestTimeoutMs',
  },
  {
    name: 'kube-api-max-inflight',
    help: 'Requests to the API server in flight at once, each on its own kept-alive connection (1-256).',
    default: '16',
    schema: integer(1, 256),
    key: 'kubeApiMaxInflight',
  },
  {
    name: 'kube-api-qps',
    help: 'Sustained requests per second to the API server (client-side rate limit; 0 turns it off).',
    default: '500',
    schema: integer(0, 100_000),
    key: 'kubeApiQps',
  },
  {
    name: 'kube-api-burst',
    help: 'Requests allowed at once above --kube-api-qps after a quiet period (1-100000).',
    default: '1000',
    schema: integer(1, 100_000),
    key: 'kubeApiBurst',
  },
];

/** `leader-elect` -> `HAROUTER_LEADER_ELECT`. */
export function envName(flag: string): string {
  return `HAROUTER_${flag.toUpperCase().replaceAll('-', '_')}`;
}

/** The `--help` text: every flag with its environment variable and default. */
export function usage(env: NodeJS.ProcessEnv = process.env): string {
  const lines = [
    'Usage: harouter-operator [flags]',
    '',
    'Runs the harouter operator: informers, admission webhook, metrics and probes on every',
    'replica; the reconcile loop on the elected leader. Every flag can also be set with its',
    'environment variable; the flag wins. Booleans accept --flag, --flag=true or --flag=false.',
    '',
    'Flags:',
  ];
  for (const f of FLAGS) {
    const def = f.defaultText ?? (typeof f.default === 'function' ? f.default(env) : f.default);
    lines.push(`  --${f.name}${f.boolean ? '' : ' value'}`);
    lines.push(`      ${f.help}`);
    lines.push(`      env ${envName(f.name)}; default ${def === '' ? '(empty)' : def}`);
  }
  lines.push('  -h, --help', '      Print this help and exit.', '');
  return lines.join('\n');
}

/** `--help` was asked for, or the validated configuration. */
export type ParseResult = { help: true } | { help: false; config: OperatorConfig };

/**
 * Parses flags then environment, applies defaults and validates everything.
 * Throws `ConfigError` naming the first bad flag(s).
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParseResult {
  const byName = new Map(FLAGS.map((f) => [f.name, f]));
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-h' || arg === '--help') return { help: true };
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) throw new ConfigError(`unknown flag --${name}`);
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (spec.boolean) value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`flag --${name} needs a value`);
      value = next;
      i++;
    }
    given.set(name, value);
  }
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const f of FLAGS) {
    const fromEnv = env[envName(f.name)];
    const source = given.has(f.name) ? `--${f.name}` : fromEnv !== undefined ? envName(f.name) : 'default';
    const raw =
      given.get(f.name) ?? fromEnv ?? (typeof f.default === 'function' ? f.default(env) : f.default);
    const result = f.schema.safeParse(raw);
    if (!result.success) {
      const message = result.error.issues[0]?.message ?? 'invalid value';
      problems.push(
        `${source}: ${JSON.stringify(raw)} ${message.startsWith('must') ? message : `is invalid: ${message}`}`,
      );
      continue;
    }
    out[f.key] = result.data;
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  const config = out as unknown as OperatorConfig;
  config.kubeconfig = config.kubeconfig || undefined;
  config.namespace = config.namespace || undefined;
  const { leaderElectionLeaseDurationMs: lease, leaderElectionRenewDeadlineMs: renew } = config;
  if (!(lease > renew))
    throw new ConfigError(
      '--leader-election-lease-duration must be greater than --leader-election-renew-deadline',
    );
  if (!(renew > 1.2 * config.leaderElectionRetryPeriodMs)) {
    throw new ConfigError(
      '--leader-election-renew-deadline must be greater than 1.2 x --leader-election-retry-period',
    );
  }
  if (lease % 1000 !== 0) throw new ConfigError('--leader-election-lease-duration must be whole seconds');
  return { help: false, config };
}
