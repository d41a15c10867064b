import { startAgent } from '../agent/agent.ts';
import type { Logger } from '../log.ts';
import { EXIT } from '../report/retry.ts';
import { UsageError } from '../report/usage-error.ts';
import type { AgentCommand } from './agent-args.ts';

/**
 * Runs `harouterctl agent` until SIGTERM or SIGINT; resolves with the exit
 * code: 0 once stopped with the spool synced, 2 for a refused FIFO or bad
 * configuration (the message names the path and the rule), 1 for anything
 * unexpected at start. Answers of the API server never end it.
 */
export async function runAgentCommand(command: AgentCommand, log: Logger): Promise<number> {
  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent(command.config, log);
  } catch (error) {
    if (error instanceof UsageError) {
      log.error({ problem: error.message }, 'the agent cannot start');
      return EXIT.badArguments;
    }
    log.error({ err: error }, 'the agent failed to start');
    return 1;
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal }, 'stopping');
  await agent.stop();
  return EXIT.ok;
}
