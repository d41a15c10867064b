import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';

/** How long requests in flight get before their connections are cut (default of {@link closeServer}). */
export const CLOSE_GRACE_MS = 5000;

/**
 * Closes an HTTP(S) server without waiting on kept-alive clients. Node's
 * `server.close()` alone resolves only once every connection has ended, and a
 * client that keeps sending requests on its kept-alive connections (the API
 * server calling the webhook during a storm, a Prometheus scraping) keeps its
 * connection open for as long as it sends: the process would not exit.
 *
 * Here the server stops accepting connections, closes the idle ones at once,
 * answers every request still arriving on an open one with `Connection: close`
 * (the client reconnects, to another replica), closes each connection whose
 * request in flight has been answered, and after `graceMs` destroys the
 * connections still open. Resolves once the server is closed.
 */
export function closeServer(server: HttpServer | HttpsServer, graceMs = CLOSE_GRACE_MS): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.prependListener('request', (_req, res) => {
      if (!res.headersSent) res.setHeader('Connection', 'close');
    });
    // A request in flight when closing began leaves its connection idle when answered: swept here.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    const cut = setTimeout(() => server.closeAllConnections(), graceMs);
    cut.unref();
    server.close((err) => {
      clearInterval(sweep);
      clearTimeout(cut);
      if (err && (err as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING') reject(err);
      else resolve();
    });
    server.closeIdleConnections();
  });
}
