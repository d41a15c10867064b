import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A plain-HTTP stand-in for the API server on a free loopback port, for faults a real one cannot produce on demand. */
export interface StandInServer {
  /** `http://127.0.0.1:<port>`. */
  base: string;
  /** Drops every connection (kept-alive and streaming ones included) and stops listening. */
  close(): Promise<void>;
}

/** Starts a {@link StandInServer} answering with `handler`. */
export async function startStandInServer(handler: RequestListener): Promise<StandInServer> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
