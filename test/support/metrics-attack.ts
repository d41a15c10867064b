/**
 * An attacker of the secure metrics endpoint: `clients` loops, each on its own
 * kept-alive HTTPS connection from its own loopback address (127.0.0.2, .3,
 * ...), sending `GET /metrics` with a new random bearer token as fast as the
 * answers come back. Every request a stranger can make costs the operator a
 * TokenReview unless it bounds them. Used by `test/integration/metrics-secure.test.ts`
 * and by the storm benchmark (`bench/metrics-attack.ts`).
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:https';

/** A running attack: `stop` ends it and resolves with the answers received, by HTTP status (0: a connection error). */
export interface MetricsAttack {
  stop(): Promise<Record<number, number>>;
}

/** Starts the attack on `host:port` (see the module comment). */
export function attackMetrics(options: { host?: string; port: number; clients: number }): MetricsAttack {
  const host = options.host ?? '127.0.0.1';
  const counts: Record<number, number> = {};
  let stopping = false;
  const loops = Array.from({ length: options.clients }, async (_, i) => {
    const agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      rejectUnauthorized: false,
      localAddress: `127.0.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`,
    });
    try {
      while (!stopping) {
        const status = await once(host, options.port, agent);
        counts[status] = (counts[status] ?? 0) + 1;
        // A refused connection: no busy loop while the server is away.
        if (status === 0) await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      agent.destroy();
    }
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return counts;
    },
  };
}

function once(host: string, port: number, agent: Agent): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        path: '/metrics',
        agent,
        headers: { authorization: `Bearer ${randomBytes(24).toString('base64url')}` },
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}
