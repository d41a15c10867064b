/**
 * The operator's API client: one connection (`kubeconfig.ts`: the kubeconfig or
 * the in-cluster service account, read without @kubernetes/client-node on the
 * common paths) and one `ApiTransport` over it, for raw JSON requests and
 * watches (kept-alive, bounded, rate-limited, counted in
 * `rest_client_requests_total{code,method,host}`). Typed client-node clients are
 * for tests and tools only: they build their own (test/support).
 */
import { type Connection, loadConnection } from './kubeconfig.ts';
import { ApiTransport, type RawRequester, type TransportOptions, type WatchFn } from './transport.ts';

export type { Connection } from './kubeconfig.ts';
export type { RawRequest, RawRequester, WatchFn } from './transport.ts';
export { loadConnection };

/** What the operator talks to the API server with. */
export interface KubeClients {
  /** Raw JSON requests (see `ApiTransport`). */
  raw: RawRequester;
  /** Watches over the same kept-alive connections. */
  watch: WatchFn;
  /** The API server's `host:port` (the `host` label of request metrics). */
  host: string;
  /** Ends the watches and closes the kept-alive connections. */
  close(): Promise<void>;
}

/** Builds `KubeClients` on an `ApiTransport` over `connection`. */
export function createKubeClients(connection: Connection, options: TransportOptions = {}): KubeClients {
  const transport = new ApiTransport(connection, options);
  return {
    raw: transport.request,
    watch: transport.watch,
    host: transport.host,
    close: () => transport.close(),
  };
}
