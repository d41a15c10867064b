import { AGENT_DEFAULTS, DEFAULT_FIFO, KEEPALIVED_DEFAULTS } from '../agent/defaults.ts';
import { DEFAULTS } from './args.ts';

const seconds = (ms: number) => `${ms / 1000}s`;

/** `harouterctl --help`, on stdout. */
export const MAIN_HELP = `harouterctl: report keepalived's VRRP transitions to the harouter-operator.

Usage:
  harouterctl report --router <uuid> [flags] [INSTANCE|GROUP <name> <STATE> <priority>]
  harouterctl agent [flags]
  harouterctl report --help | harouterctl agent --help
  harouterctl --version

Commands:
  report   Apply this node's HARouterState for one router (what a keepalived
           notify script runs). See "harouterctl report --help".
  agent    The node agent: one long-running process per node that reads
           keepalived's notify FIFO and reports every router's transitions.
           Prefer it on a node with more than a handful of routers.
           See "harouterctl agent --help".
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

/** `harouterctl agent --help`, on stdout. */
export const AGENT_HELP = `harouterctl agent: the node agent. Reads keepalived's notify FIFO and applies
this node's HARouterState of each router (server-side apply, field manager
"harouterctl"), newest state per router first-come, retried until delivered.

Usage:
  harouterctl agent [--fifo PATH] [--instance NAME=[NAMESPACE/]ROUTERID]... [flags]

keepalived.conf:
  global_defs {
      vrrp_notify_fifo ${DEFAULT_FIFO}
  }
keepalived then writes one line per event: INSTANCE "<name>" <STATE> <priority>
or GROUP "<name>" <STATE>; MASTER -> Primary, BACKUP -> Backup, FAULT -> Fault,
STOP and DELETED -> Stopped. MASTER_RX_LOWER_PRI, MASTER_PRIORITY and
BACKUP_PRIORITY are counted and ignored; any other line is counted as malformed.

Flags:
  --fifo <path>          keepalived's notify FIFO (default ${DEFAULT_FIFO}).
                         Created with mode 0600 when missing. Refused (exit 2) when
                         it is a symlink, not a FIFO, owned by another user than
                         this one or root, writable by others, or by group (unless
                         the group is --fifo-group), or when its directory is owned
                         by another user than this one or root, or writable by
                         group or others.
  --fifo-group <gid>     A numeric group whose members may write the FIFO too: a
                         non-root agent reads a FIFO root:<gid> mode 0660 made by
                         keepalived (the agent opens it read-write).
  --instance <NAME=[NAMESPACE/]ROUTERID>
                         Maps a keepalived instance or group name to a router
                         (repeatable). A name that is itself a router UUID needs none.
  --instances <file>     A YAML or JSON map of the same (name: "[namespace/]routerid"),
                         re-read when it changes. --instance wins over it.
  --agent <node>         This node's name. Default: $NODE_NAME.
  -n, --namespace <ns>   Namespace of routers mapped without one. Default:
                         $POD_NAMESPACE, then the kubeconfig context's, then the
                         service account's, then "default".
  --state-dir <dir>      The spool of undelivered reports (default ${AGENT_DEFAULTS.stateDir}),
                         directory 0700, file 0600.
  --kubeconfig <file>    As for "report" (default $KUBECONFIG, else in-cluster).
  --metrics-bind-address <addr>
                         /metrics, /healthz and /readyz (default ${AGENT_DEFAULTS.metricsBindAddress}; 0: off).
  --max-in-flight <n>    Most reports in flight at once (default ${AGENT_DEFAULTS.concurrency}).
  --timeout <duration>   Longest single request (default ${seconds(AGENT_DEFAULTS.requestTimeoutMs)}).
  --log-level <level>    fatal, error, warn, info, debug, trace or silent (default info).
  -h, --help             This text.

keepalived configuration from HARouters (spec.vrrp):
  --keepalived-config-dir <dir>
                         Render one <routerId>.conf per HARouter of the namespace
                         that lists this node and has a VRID in status.vrrp.vrid,
                         plus harouter-global.conf; keepalived.conf then needs
                           include <dir>/harouter-global.conf
                           include <dir>/*-*-*-*-*.conf
                         Without this flag nothing is rendered.
  --fence-dir <dir>      Fence files, 1 while this node's instance is fenced
                         (default ${KEEPALIVED_DEFAULTS.fenceDir}).
  --keepalived-pid-file <file>
                         Reloads are SIGHUP to this pid, at most one per 2 s
                         (default ${KEEPALIVED_DEFAULTS.pidFile}).
  --run-keepalived       Run keepalived (--dont-fork --log-console --vrrp) with
                         <dir>/keepalived.conf, written by the agent; restarted
                         with backoff when it exits, stopped on SIGTERM.

Delivery: each line is stamped (observedAt, nanoseconds, strictly increasing)
when read. Per router the newest state wins: one write in flight, later lines
replace the pending one. A "stale report" answer counts as delivered; 422
(invalid) is dropped and logged; every other failure, 401 and 403 included, is
retried with jittered backoff up to 30s, without deadline. Undelivered states
are kept in the spool and sent first after a restart.

Exit codes:
  0  stopped by SIGTERM or SIGINT, the spool synced
  2  bad arguments, or the FIFO refused (the message names the path and rule)
`;
