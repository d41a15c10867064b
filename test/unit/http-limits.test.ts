import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  boundServer,
  HTTP_LIMITS,
  jsonDepthWithin,
  RequestError,
  RequestGate,
  type ServerLimits,
} from '../../src/http/limits.ts';

const open: Server[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe('jsonDepthWithin', () => {
  const depth = (text: string, max: number) => jsonDepthWithin(Buffer.from(text), max);
  it('counts object and array nesting outside strings', () => {
    expect(depth('{"a":[1,{"b":[]}]}', 4)).toBe(true);
    expect(depth('{"a":[1,{"b":[]}]}', 3)).toBe(false);
    expect(depth('[[[[[[[[[[', 9)).toBe(false);
    expect(depth(`${'['.repeat(1_000_000)}`, 64)).toBe(false);
  });
  it('ignores brackets in strings, escaped quotes included', () => {
    expect(depth('{"a":"[[[[{{{{\\"[[[["}', 1)).toBe(true);
    expect(depth('["\\\\",[[]]]', 2)).toBe(false);
  });
});

/** A server that reads every body through a gate and answers its length. */
async function gated(limits: Partial<ServerLimits>): Promise<{ port: number; gate: RequestGate }> {
  const all: ServerLimits = { ...HTTP_LIMITS, maxBodyBytes: 1024, maxBytesInFlight: 4096, ...limits };
  const gate = new RequestGate(all);
  const server = createServer(async (req, res) => {
    if (!gate.admit(req, res)) return;
    try {
      const body = await gate.readBody(req, res);
      if (req.url === '/slow') await new Promise((r) => setTimeout(r, 300));
      res.end(String(body.length));
    } catch (err) {
      // A client that went away (ClientAbortedError) has no one to answer.
      if (!(err instanceof RequestError)) return;
      res.shouldKeepAlive = false;
      res.writeHead(err.status).end();
    }
  });
  boundServer(server, all);
  open.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, gate };
}

const post = (port: number, body: string, path = '/') =>
  fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body }).then(async (r) => ({
    status: r.status,
    text: await r.text(),
  }));

describe('RequestGate', () => {
  it('reads bodies up to the limit and refuses larger ones with 413, by Content-Length or while reading', async () => {
    const { port, gate } = await gated({});
    expect(await post(port, 'x'.repeat(1024))).toEqual({ status: 200, text: '1024' });
    expect((await post(port, 'x'.repeat(1025))).status).toBe(413);
    // Chunked, no Content-Length: refused once it grows past the limit.
    const chunked = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
        for (let i = 0; i < 8; i++) socket.write(`200\r\n${'y'.repeat(512)}\r\n`);
      });
      let answer = '';
      socket.on('data', (d) => {
        answer += String(d);
      });
      socket.on('close', () => resolve(answer));
      socket.on('error', () => resolve(answer));
    });
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    await new Promise((r) => setTimeout(r, 50));
    expect(gate.load).toEqual({ requests: 0, bytes: 0 });
  });

  it('answers 429 beyond the concurrent requests, and 503 beyond the bytes in flight', async () => {
    const busy = await gated({ maxConcurrentRequests: 2 });
    const statuses = await Promise.all(
      Array.from({ length: 5 }, () => post(busy.port, 'x', '/slow').then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(2);
    expect(statuses.filter((s) => s === 429)).toHaveLength(3);

    // Only what bodies hold beyond 64 KiB counts: three 100 KiB bodies need 108 KiB of a 50 KiB budget.
    const full = await gated({ maxBodyBytes: 200 * 1024, maxBytesInFlight: 50 * 1024 });
    const sizes = await Promise.all(
      Array.from({ length: 3 }, () => post(full.port, 'x'.repeat(100 * 1024), '/slow').then((r) => r.status)),
    );
    // Small bodies never wait on large ones.
    expect(await post(full.port, 'y'.repeat(60 * 1024))).toEqual({ status: 200, text: String(60 * 1024) });
    expect(sizes.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    expect(sizes).toContain(503);
    await new Promise((r) => setTimeout(r, 50));
    expect(full.gate.load).toEqual({ requests: 0, bytes: 0 });
  });
});

describe('boundServer', () => {
  it('at the connection limit, closes the slowest connection to admit a new one', async () => {
    const { port } = await gated({ maxConnections: 3 });
    const sockets: Socket[] = [];
    const closed: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('close', () => closed.push(i));
      s.on('error', () => undefined);
      sockets.push(s);
      await new Promise((r) => s.once('connect', r));
      await new Promise((r) => setTimeout(r, 20));
    }
    // A fourth client still gets an answer; the oldest idle socket made room.
    expect(await post(port, 'hello')).toEqual({ status: 200, text: '5' });
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toContain(0);
    for (const s of sockets) s.destroy();
  });
});

/** A client that sends a request head announcing 1000 bytes of body, then one byte now and then. */
function slowClient(port: number, closed: () => void): Socket {
  const s = connect(port, '127.0.0.1', () => {
    s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{');
  });
  const timer = setInterval(() => s.write('x'), 400);
  s.on('close', () => {
    clearInterval(timer);
    closed();
  });
  s.on('error', () => undefined);
  return s;
}

describe('boundServer against slow clients', () => {
  it("a new connection from a full address evicts that address's slowest, and is answered", async () => {
    const { port } = await gated({ maxConnections: 10, maxConnectionsPerAddress: 3 });
    let closed = 0;
    const slow = Array.from({ length: 3 }, () => slowClient(port, () => closed++));
    await new Promise((r) => setTimeout(r, 400));
    expect(closed).toBe(0);
    expect(await post(port, 'hello')).toEqual({ status: 200, text: '5' });
    expect(closed).toBeGreaterThanOrEqual(1);
    for (const s of slow) s.destroy();
  });

  it('closes a request that arrives below the minimum rate soon after its grace', async () => {
    const { port } = await gated({ minBytesPerSecond: 4096, rateGraceMs: 500 });
    const started = performance.now();
    const closedAfter = await new Promise<number>((resolve) => {
      slowClient(port, () => resolve(performance.now() - started));
    });
    // Owed 4 KiB/s after 0.5 s: the ~60 bytes sent are short by the first sweep past ~0.52 s.
    expect(closedAfter).toBeGreaterThanOrEqual(500);
    expect(closedAfter).toBeLessThan(5000);
  });
});
