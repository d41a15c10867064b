/**
 * The working sample local mode installs: the operator's namespace, the reporter
 * identity and its RBAC, three Ready Nodes with a reporter Pod bound to each, and
 * one HARouter over the three with an endpoint and its selector-less Service.
 * `examples/` refers to the same names and times; a test keeps them in step.
 */
import { API_VERSION, GROUP, HAROUTER, HAROUTER_STATE, ROUTER_LABEL } from '../api/index.ts';

/** The operator's namespace, where the reporter identity and its Pods live. */
export const SYSTEM_NAMESPACE = 'harouter-system';
/** The reporter service account of the contract. */
export const REPORTER_SERVICE_ACCOUNT = 'harouter-reporter';
/** The namespace of the sample router (and of its reports). */
export const SAMPLE_NAMESPACE = 'demo';
/** The sample router's id (its HARouter name). */
export const SAMPLE_ROUTER_ID = '6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12';
/** The selector-less Service the sample router's EndpointSlice serves. */
export const SAMPLE_SERVICE = 'demo-router';

/** The sample nodes: names, documentation-range InternalIPs (EndpointSlices refuse loopback), VRRP priorities. */
export const SAMPLE_NODES = [
  { name: 'node-a', ip: '198.51.100.11', priority: 150 },
  { name: 'node-b', ip: '198.51.100.12', priority: 100 },
  { name: 'node-c', ip: '198.51.100.13', priority: 50 },
] as const;

/**
 * The reports local mode applies at start, each with its node's own token, so the
 * sample begins with an active agent: node-a Primary, node-b and node-c Backup.
 * Their `observedAt` is a fixed time in the past, older than the reports in
 * `examples/` ({@link EXAMPLE_OBSERVED_AT}), so those apply (not stale) and
 * `harouterctl`, which stamps the current time, is newer than both.
 */
export const SEED_OBSERVED_AT = '2026-01-01T00:00:00.000000000Z';
export const SEED_STATES: Readonly<Record<string, 'Primary' | 'Backup'>> = {
  'node-a': 'Primary',
  'node-b': 'Backup',
  'node-c': 'Backup',
};
/** The `observedAt` of the reports in `examples/`: after the seeds, before any real clock reading. */
export const EXAMPLE_OBSERVED_AT = '2026-01-01T00:01:00.000000000Z';

/** The name of the reporter Pod bound to a node. */
export function reporterPodName(node: string): string {
  return `harouter-reporter-${node}`;
}

/** The reporters' ClusterRole of the contract: the resource only, never its status. */
export const REPORTER_CLUSTER_ROLE = 'harouter-reporter';

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
} & Record<string, unknown>;

const LABELS = { 'app.kubernetes.io/part-of': 'harouter-local' };

/**
 * The reporters' rules (API.md): write their HARouterStates, never a status, and read
 * HARouters (the agent renders keepalived's configuration from them).
 */
export const REPORTER_RULES = [
  {
    apiGroups: [GROUP],
    resources: [HAROUTER_STATE.plural],
    verbs: ['get', 'create', 'patch', 'update', 'delete'],
  },
  { apiGroups: [GROUP], resources: [HAROUTER.plural], verbs: ['get', 'list', 'watch'] },
];

/** Namespaces, the reporter service account and its RBAC. */
export function baseManifests(): Manifest[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYSTEM_NAMESPACE, labels: LABELS } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: SAMPLE_NAMESPACE, labels: LABELS } },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: REPORTER_SERVICE_ACCOUNT, namespace: SYSTEM_NAMESPACE, labels: LABELS },
      automountServiceAccountToken: false,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: REPORTER_CLUSTER_ROLE, labels: LABELS },
      rules: REPORTER_RULES,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: REPORTER_CLUSTER_ROLE, labels: LABELS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: REPORTER_CLUSTER_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: REPORTER_SERVICE_ACCOUNT, namespace: SYSTEM_NAMESPACE }],
    },
  ];
}

/** The three Nodes (status is set separately, through the status subresource) and a reporter Pod on each. */
export function nodeManifests(): Manifest[] {
  return SAMPLE_NODES.flatMap((node) => [
    {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: node.name, labels: { ...LABELS, 'kubernetes.io/hostname': node.name } },
    },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: reporterPodName(node.name),
        namespace: SYSTEM_NAMESPACE,
        labels: { ...LABELS, 'app.kubernetes.io/name': 'harouter-reporter' },
      },
      spec: {
        nodeName: node.name,
        serviceAccountName: REPORTER_SERVICE_ACCOUNT,
        automountServiceAccountToken: false,
        // Nothing runs it: there is no kubelet. The Pod exists so that its
        // node-bound token identifies the node.
        containers: [{ name: 'reporter', image: 'example.invalid/harouter-reporter:local' }],
      },
    },
  ]);
}

/** A Node's status: Ready, with its InternalIP. Applied with a merge patch on `nodes/status`. */
export function readyNodeStatus(node: { name: string; ip: string }, now: string) {
  return {
    status: {
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'set by harouter local mode (nothing heartbeats this node)',
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
      addresses: [
        { type: 'InternalIP', address: node.ip },
        { type: 'Hostname', address: node.name },
      ],
    },
  };
}

/** The sample router's virtual address with `--keepalived` (on the nodes' bridge, `eth0`). */
export const SAMPLE_VIRTUAL_IP = '192.0.2.101/24';
/** How long a split brain's fence holds in the sample (the default, 60 s, is long for a demonstration). */
export const SAMPLE_FENCE_HOLD_SECONDS = 10;

/**
 * The sample router's `spec.vrrp` with `--keepalived`: the agents render its
 * keepalived configuration (VRID allocated by the operator).
 */
export function sampleVrrp() {
  return { interface: 'eth0', virtualIPs: [SAMPLE_VIRTUAL_IP], fenceHoldSeconds: SAMPLE_FENCE_HOLD_SECONDS };
}

/**
 * The sample HARouter and its selector-less Service, opted in to it (label
 * `harouter.dev/router`); with `vrrp`, the router carries {@link sampleVrrp}.
 */
export function sampleRouterManifests(options: { vrrp?: boolean } = {}): Manifest[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: SAMPLE_SERVICE,
        namespace: SAMPLE_NAMESPACE,
        labels: { ...LABELS, [ROUTER_LABEL]: SAMPLE_ROUTER_ID },
      },
      spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    },
    {
      apiVersion: API_VERSION,
      kind: HAROUTER.kind,
      metadata: { name: SAMPLE_ROUTER_ID, namespace: SAMPLE_NAMESPACE, labels: LABELS },
      spec: {
        displayName: 'demo router',
        agents: SAMPLE_NODES.map((node) => ({ name: node.name, priority: node.priority })),
        endpoint: { serviceName: SAMPLE_SERVICE, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
        ...(options.vrrp ? { vrrp: sampleVrrp() } : {}),
      },
    },
  ];
}

/** A report of the sample router by one node, as the seeds and `examples/` write it. */
export function sampleReport(
  node: string,
  state: 'Primary' | 'Backup' | 'Fault' | 'Stopped',
  observedAt: string,
) {
  return {
    apiVersion: API_VERSION,
    kind: HAROUTER_STATE.kind,
    metadata: { name: `${SAMPLE_ROUTER_ID}.${node}`, namespace: SAMPLE_NAMESPACE },
    spec: { routerId: SAMPLE_ROUTER_ID, agent: node, state, observedAt },
  };
}
