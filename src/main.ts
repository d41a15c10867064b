/**
 * `harouter-operator`: parses flags and environment, runs the operator until
 * SIGTERM/SIGINT or a lost lease. Exit codes: 0 stopped cleanly, 1 failure or
 * lost leadership, 2 bad flags or values.
 */
import { ConfigError, parseConfig, usage } from './config.ts';
import { createLogger } from './log.ts';

/** The process exit codes (see the module comment). */
export const EXIT = { ok: 0, failed: 1, badArguments: 2 } as const;

/** Longest wait for a graceful shutdown before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 25_000;

/** Where `main` writes (tests pass their own). */
export interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Runs the operator with these arguments and environment; resolves the exit code. */
export async function main(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  streams: Streams = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let parsed: ReturnType<typeof parseConfig>;
  try {
    parsed = parseConfig(argv, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    streams.stderr.write(
      `harouter-operator: ${err.message}\nRun 'harouter-operator --help' for the flags.\n`,
    );
    return EXIT.badArguments;
  }
  if (parsed.help) {
    streams.stdout.write(usage(env));
    return EXIT.ok;
  }
  const { config } = parsed;
  const log = createLogger(config.logLevel, streams.stderr);
  log.info(
    {
      identity: config.identity,
      namespace: config.namespace ?? '(all)',
      leaderElect: config.leaderElect,
      webhook: config.webhook,
      workers: config.workers,
    },
    'starting harouter-operator',
  );
  // Loaded only now, so that --help and bad flags answer without loading the API client.
  const { Operator } = await import('./operator.ts');
  const { describeError } = await import('./kube/errors.ts');
  const { loadConnection } = await import('./kube/kubeconfig.ts');
  let operator: InstanceType<typeof Operator>;
  try {
    // Errors name the problem, never the kubeconfig's content (see kube/kubeconfig.ts).
    const connection = await loadConnection(config.kubeconfig);
    operator = new Operator({ config, log, connection });
  } catch (err) {
    log.error({ error: describeError(err) }, 'failed to start');
    return EXIT.failed;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT.failed);
    }
    log.info({ signal }, 'signal received: shutting down');
    void operator.stop();
    setTimeout(() => {
      log.error({ graceMs: SHUTDOWN_GRACE_MS }, 'graceful shutdown timed out: exiting');
      process.exit(EXIT.failed);
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await operator.start();
  } catch (err) {
    log.error({ error: describeError(err) }, 'failed to start');
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    return EXIT.failed;
  }
  const exit = await operator.done;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return exit.code;
}

/** Entry point of `bin/harouter-operator.js`. */
export async function run(): Promise<void> {
  const code = await main(process.argv.slice(2), process.env);
  process.exitCode = code;
  // Whatever might still hold the event loop (a socket being closed), do not linger.
  setTimeout(() => process.exit(code), 2000).unref();
}

if (import.meta.main) await run();
