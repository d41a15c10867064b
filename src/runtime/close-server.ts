import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';

/** How long requests in flight get before their connections are cut (default of {@link closeServer}). */
export const CLOSE_GRACE_MS = 5000;

/** How long kept-alive connections may still carry a request (answered `Connection: close`) when closing. */
export const CLOSE_IDLE_MS = 1000;

/**
 * Closes an HTTP(S) server without waiting on kept-alive clients. Node's
 * `server.close()` alone resolves only once every connection has ended, and a
 * client that keeps sending requests on its kept-alive connections (the API
 * server calling the webhook during a storm, a Prometheus scraping) keeps its
 * connection open for as long as it sends: the process would not exit.
 *
 * Here the server answers every request with `Connection: close` (the client
 * reconnects, to another replica) and, after `idleMs`, stops accepting
 * connections, closes the idle ones and then each one whose request in flight
 * has been answered; after `graceMs` more it destroys the connections still open.
 * Resolves once the server is closed. Kept-alive connections are not closed at
 * once: a client may be writing a request on one at that moment and would see a
 * reset, which the API server reports as a failed webhook call (a refused report,
 * seen during a rolling update on a real node); in `idleMs` a busy client's
 * connections each carry one more request and are closed by the client.
 */
export function closeServer(
  server: HttpServer | HttpsServer,
  graceMs = CLOSE_GRACE_MS,
  idleMs = CLOSE_IDLE_MS,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.prependListener('request', (_req, res) => {
      if (!res.headersSent) res.setHeader('Connection', 'close');
    });
    setTimeout(() => {
      // A request in flight leaves its connection idle when answered: swept here.
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
    }, idleMs);
  });
}
