import { DEFAULTS } from './args.ts';

const seconds = (ms: number) => `${ms / 1000}s`;

/** `harouterctl --help`, on stdout. */
export const MAIN_HELP = `harouterctl: report keepalived's VRRP transitions to the harouter-operator.

Usage:
  harouterctl report --router <uuid> [flags] [INSTANCE|GROUP <name> <STATE> <priority>]
  harouterctl report --help
  harouterctl --version

Commands:
  report   Apply this node's HARouterState for one router (what a keepalived
           notify script runs). See "harouterctl report --help".
`;

/** `harouterctl report --help`, on stdout: flags, exit codes and a keepalived.conf example. */
export const REPORT_HELP = `harouterctl report: apply one agent's HARouterState (router id x node) by
server-side apply (field manager "harouterctl", force), with the pod's
service-account token, bounded retries and an overall deadline.

Usage:
  harouterctl report --router <uuid> [flags] INSTANCE|GROUP <name> <STATE> [<priority>]
  harouterctl report --router <uuid> --state Primary|Backup|Fault|Stopped [flags]

keepalived appends four arguments to a "notify" command: INSTANCE or GROUP,
the instance (or group) name, the new state and the priority. States map to:
  MASTER -> Primary   BACKUP -> Backup   FAULT -> Fault
  STOP -> Stopped     DELETED -> Stopped

Flags:
  --router <uuid>        The HARouter's name: a lower-case canonical UUID. Required.
  --agent <node>         This agent's node name. Default: $NODE_NAME. With a
                         pod-bound token the server only accepts this pod's node.
  -n, --namespace <ns>   The HARouter's namespace. Default: $POD_NAMESPACE, then the
                         kubeconfig context's namespace, then
                         /var/run/secrets/kubernetes.io/serviceaccount/namespace,
                         then "default".
  --state <state>        Primary, Backup, Fault or Stopped, for callers that do not
                         pass keepalived's arguments (notify_master and friends).
  --priority <0-255>     The VRRP priority (default: keepalived's 4th argument).
  --message <text>       A note stored with the report, at most 256 printable
                         characters. Default: "keepalived <TYPE> <name> <STATE>".
  --kubeconfig <file>    Kubeconfig to use. Default: $KUBECONFIG, else the in-cluster
                         service account (its token file re-read as it rotates),
                         else ~/.kube/config.
  --timeout <duration>   Longest single request (default ${seconds(DEFAULTS.requestTimeoutMs)}).
  --deadline <duration>  Longest time for the whole report, retries included
                         (default ${seconds(DEFAULTS.deadlineMs)}), so keepalived is never blocked long.
  --max-attempts <n>     Most attempts, the first included (default ${DEFAULTS.maxAttempts}).
  --log-level <level>    fatal, error, warn, info, debug, trace or silent (default info).
  --dry-run              Print the HARouterState that would be applied on stdout
                         (JSON) and exit; no network.
  -h, --help             This text.
Durations: 500ms, 5s, 1m, 1m30s, or a number of seconds.

Every report carries observedAt, the time this process started, in RFC 3339
with nine fractional digits; the server refuses a report older than the one it
holds ("stale report"), which harouterctl counts as success: a newer report has
already been delivered.

Retries: network errors, timeouts, HTTP 408, 429, 5xx and 409 conflicts from
optimistic concurrency are retried with jittered exponential backoff
(200ms doubling to 2s) until the deadline. A field-manager conflict, a denial or
an invalid object is final.

Exit codes:
  0  applied, or stale (the server already holds a newer report)
  2  bad arguments (nothing was sent)
  3  refused by the API server (denied 401/403, invalid 400/422, not found 404,
     field conflict); the server's reason and message are logged on stderr
  4  transient failure still failing at the deadline

Output: JSON log lines on stderr; stdout stays empty (except --help, --dry-run).

keepalived.conf example (the reporter runs next to keepalived, in a pod whose
NODE_NAME and POD_NAMESPACE come from the downward API):

  vrrp_instance VI_1 {
      state BACKUP
      interface eth0
      virtual_router_id 51
      priority 100
      virtual_ipaddress {
          203.0.113.10/24
      }
      notify "/usr/local/bin/harouterctl report --router 6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12"
  }

keepalived then runs, on each transition, for example:
  /usr/local/bin/harouterctl report --router 6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12 INSTANCE VI_1 MASTER 100
`;
