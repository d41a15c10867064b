import packageJson from '../../package.json' with { type: 'json' };
import { createLogger } from '../log.ts';
import { processClock } from '../report/clock.ts';
import { EXIT } from '../report/retry.ts';
import { UsageError } from '../report/usage-error.ts';
import type { Command } from './args.ts';

/** The help text of a topic (loaded only when asked for). */
async function helpText(topic: 'main' | 'report' | 'agent'): Promise<string> {
  const { AGENT_HELP, MAIN_HELP, REPORT_HELP } = await import('./help.ts');
  return { main: `${MAIN_HELP}\n${REPORT_HELP}\n${AGENT_HELP}`, report: REPORT_HELP, agent: AGENT_HELP }[
    topic
  ];
}

/** The package version, printed by `--version`. */
export const VERSION: string = packageJson.version;

/** Output streams, injectable for tests. */
export interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Runs harouterctl with the given arguments and environment; resolves with the
 * exit code. `observedAt` is read from the clock first, before anything else.
 */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  streams: Streams = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const observedAt = processClock().now();
  let command: Command;
  try {
    // Each command loads only its own modules: the agent, a long-running process, never loads
    // the report's schema checks (zod), and both start faster.
    command =
      argv[0] === 'agent'
        ? (await import('./agent-args.ts')).parseAgentCommandLine(argv.slice(1), env)
        : (await import('./args.ts')).parseCommandLine(argv, env);
  } catch (error) {
    return usageFailure(error, streams);
  }
  switch (command.command) {
    case 'help':
      streams.stdout.write(await helpText(command.topic));
      return EXIT.ok;
    case 'version':
      streams.stdout.write(`harouterctl ${VERSION}\n`);
      return EXIT.ok;
    case 'agent': {
      const log = createLogger(command.logLevel, streams.stderr).child({ component: 'agent' });
      const { runAgentCommand } = await import('./agent.ts');
      return runAgentCommand(command, log);
    }
    case 'report': {
      const log = createLogger(command.logLevel, streams.stderr).child({ component: 'harouterctl' });
      try {
        if (command.dryRun) {
          const { prepareReport } = await import('./report.ts');
          const { object } = await prepareReport(command, observedAt);
          streams.stdout.write(`${JSON.stringify(object, null, 2)}\n`);
          return EXIT.ok;
        }
        const { runReport } = await import('./report.ts');
        return await runReport(command, observedAt, log);
      } catch (error) {
        if (error instanceof UsageError) return usageFailure(error, streams, log);
        log.error({ err: error }, 'unexpected failure');
        return EXIT.transient;
      }
    }
  }
}

function usageFailure(
  error: unknown,
  streams: Streams,
  log = createLogger('info', streams.stderr).child({ component: 'harouterctl' }),
): number {
  if (!(error instanceof UsageError)) throw error;
  log.error({ problem: error.message }, 'bad arguments; nothing was sent');
  return EXIT.badArguments;
}

/** Entry point of `bin/harouterctl.js`: sets the exit code and lets the process end. */
export async function run(): Promise<void> {
  const code = await main(process.argv.slice(2), process.env);
  process.exitCode = code;
  // Nothing should keep the process alive; if something does, do not block keepalived.
  setTimeout(() => process.exit(code), 1000).unref();
}

if (import.meta.main) await run();
