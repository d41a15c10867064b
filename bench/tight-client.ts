/**
 * The agent benchmark's floor: the tightest client this benchmark can write,
 * independent of the agent's own sender. It reads the server, CA and bearer
 * token straight from a reporter's kubeconfig, keeps `concurrency` HTTPS
 * connections alive and server-side applies one HARouterState per router with
 * nothing else around the request (no retries, no spool, no coalescing). The
 * agent is judged against the time this client takes to store the same reports
 * with the same token through the same admission.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';

interface Kubeconfig {
  clusters: {
    cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string };
  }[];
  users: { user: { token?: string } }[];
}

/** A report to store: one agent's state of one router. */
export interface FloorReport {
  router: string;
  agent: string;
  state: string;
  observedAt: string;
}

/** Writes reports over kept-alive connections with one reporter's token. */
export class TightClient {
  private readonly agent: Agent;
  private readonly server: URL;
  private readonly token: string;
  private readonly namespace: string;

  constructor(kubeconfigPath: string, namespace: string, concurrency: number) {
    const config = parse(readFileSync(kubeconfigPath, 'utf8')) as Kubeconfig;
    const cluster = config.clusters[0]?.cluster;
    const token = config.users[0]?.user.token;
    if (!cluster || !token) throw new Error(`${kubeconfigPath}: no cluster or no token`);
    const caPath = cluster['certificate-authority'];
    const ca = caPath
      ? readFileSync(resolve(dirname(kubeconfigPath), caPath))
      : Buffer.from(cluster['certificate-authority-data'] ?? '', 'base64');
    this.server = new URL(cluster.server);
    this.token = token;
    this.namespace = namespace;
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca });
  }

  /** Applies one report; resolves with the HTTP status (200 or 201 when stored). */
  apply(report: FloorReport): Promise<number> {
    const name = `${report.router}.${report.agent}`;
    const body = JSON.stringify({
      apiVersion: 'harouter.dev/v1alpha1',
      kind: 'HARouterState',
      metadata: { name, namespace: this.namespace },
      spec: {
        routerId: report.router,
        agent: report.agent,
        state: report.state,
        observedAt: report.observedAt,
      },
    });
    const path =
      `/apis/harouter.dev/v1alpha1/namespaces/${this.namespace}/harouterstates/${name}` +
      '?fieldManager=bench-floor&force=true';
    return new Promise((done, fail) => {
      const req = request(
        {
          agent: this.agent,
          host: this.server.hostname,
          port: this.server.port,
          method: 'PATCH',
          path,
          headers: {
            authorization: `Bearer ${this.token}`,
            'content-type': 'application/apply-patch+yaml',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => done(res.statusCode ?? 0));
          res.on('error', fail);
        },
      );
      req.on('error', fail);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
