/**
 * A flood of random bearer tokens on the operator's secure `/metrics` (see
 * test/support/metrics-attack.ts): `--clients` loops, each from its own
 * loopback address, each request with a new random token, as fast as the
 * answers come. Runs until SIGTERM or SIGINT (or the message `stop` when
 * forked), then prints the answers by HTTP status as one JSON line (and sends
 * them to the parent when forked). Used by `npm run bench -- --attack-metrics 50`;
 * by hand:
 *
 *   node bench/metrics-attack.ts --port 8080 [--host 127.0.0.1] [--clients 50]
 */
import { parseArgs } from 'node:util';
import { attackMetrics } from '../test/support/metrics-attack.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    clients: { type: 'string', default: '50' },
  },
});
const port = Number(values.port);
const clients = Number(values.clients);
if (!Number.isInteger(port) || port < 1 || !Number.isInteger(clients) || clients < 1) {
  process.stderr.write('usage: metrics-attack.ts --port PORT [--host HOST] [--clients N]\n');
  process.exit(2);
}
const attack = attackMetrics({ host: values.host ?? '127.0.0.1', port, clients });
const started = performance.now();
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  const answers = await attack.stop();
  const seconds = (performance.now() - started) / 1000;
  const total = Object.values(answers).reduce((a, b) => a + b, 0);
  const result = {
    clients,
    seconds: Number(seconds.toFixed(1)),
    answers,
    perSecond: Math.round(total / seconds),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (process.send) process.send(result, () => process.exit(0));
  else process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('message', (message) => {
  if (message === 'stop') void stop();
});
process.send?.({ started: true });
