import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startControlPlane } from '../../src/local/controlplane/index.ts';

const usage = `Usage: npm run control-plane -- [--dir DIR] [--port PORT] [--no-controller-manager]

Runs a real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)
in the foreground, writes DIR/admin.kubeconfig and stops on Ctrl-C.
Binaries are built from the Go module proxy on first use (cached in ~/.cache/harouter).

  --dir DIR                  working directory (default .local/control-plane)
  --port PORT                API server port (default: a free port)
  --no-controller-manager    run without kube-controller-manager
`;

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '.local/control-plane' },
    port: { type: 'string' },
    'no-controller-manager': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}
const port = values.port === undefined ? undefined : Number(values.port);
if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
  process.stderr.write(`--port must be a TCP port number\n${usage}`);
  process.exit(2);
}

const started = Date.now();
const plane = await startControlPlane({
  dir: resolve(values.dir),
  controllerManager: !values['no-controller-manager'],
  ...(port ? { apiServerPort: port } : {}),
});
process.stdout.write(
  `control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${plane.server}\n` +
    `  export KUBECONFIG=${plane.kubeconfigPath}\n` +
    `  ${plane.binaries.kubectl} get namespaces\n` +
    `logs: ${resolve(values.dir, 'logs')}; Ctrl-C to stop\n`,
);
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping the control plane\n');
    plane.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
