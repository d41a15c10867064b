/**
 * harouterctl's kubeconfig: the loader both programs share (`src/kube/kubeconfig.ts`,
 * client-node only as a lazy fallback), with its failures as {@link UsageError}s
 * (exit 2: what the user gave cannot be used, nothing is sent).
 */
import { type Connection, KubeconfigError, loadConnection } from '../kube/kubeconfig.ts';
import { UsageError } from './usage-error.ts';

/** How a report reaches the API server: server, the context's namespace, fresh request options per attempt. */
export type Transport = Connection;

/**
 * Loads the transport in controller-runtime's order (see `loadConnection`) and reads
 * the credentials once: a missing or unreadable file is a {@link UsageError}, never a
 * retried network failure.
 */
export async function loadTransport(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Transport> {
  try {
    return await loadConnection(path, env);
  } catch (error) {
    if (error instanceof KubeconfigError) throw new UsageError(error.message);
    throw error;
  }
}
