/**
 * A problem with what the user gave (flags, kubeconfig, FIFO): the command
 * exits with code 2 and sends nothing. Its message is shown to the user, so it
 * never carries file contents or credentials.
 */
export class UsageError extends Error {
  override name = 'UsageError';
}
