/**
 * `--keepalived-config-dir`: the agent keeps keepalived's configuration equal to
 * the HARouters (API.md, "The agent renders it" and "Fences"). It watches the
 * HARouters of its namespace (an informer: list, then watch), and after each batch
 * of events renders what {@link desiredRouters} returns, writes the files that
 * changed ({@link KeepalivedFiles}) and asks for a throttled reload
 * ({@link ReloadThrottle}) when a router file changed; fence files need none
 * (keepalived follows them by inotify). Nothing is written before the first list
 * has landed, so a restart never deletes the files of routers that still exist.
 */
import { join } from 'node:path';
import { GROUP, HAROUTER, type HARouter, harouterSchema, VERSION } from '../api/index.ts';
import { desiredRouters } from '../keepalived/desired.ts';
import { GLOBAL_FILE, renderGlobalConfig, renderMainConfig } from '../keepalived/render.ts';
import { collectionPath, Informer, type SafeParser } from '../kube/informer.ts';
import type { Connection } from '../kube/kubeconfig.ts';
import { ApiTransport } from '../kube/transport.ts';
import type { Logger } from '../log.ts';
import { KeepalivedFiles } from './keepalived-files.ts';
import { KeepalivedProcess } from './keepalived-process.ts';
import type { AgentMetrics } from './metrics.ts';
import { ReloadThrottle } from './reload-throttle.ts';

/** The agent's keepalived flags. */
export interface KeepalivedOptions {
  /** `--keepalived-config-dir`. */
  configDir: string;
  /** `--fence-dir`. */
  fenceDir: string;
  /** `--keepalived-pid-file`. */
  pidFile: string;
  /** `--run-keepalived`. */
  run: boolean;
  /** The keepalived binary the agent runs (tests run a stand-in). */
  binary?: string;
}

/** The main configuration file of a keepalived the agent runs. */
export const MAIN_CONFIG_FILE = 'keepalived.conf';
/** Reloads are at least this far apart (API.md). */
export const RELOAD_INTERVAL_MS = 2000;
/** With `--run-keepalived`, keepalived starts once the HARouters are listed, or after this long without them. */
const START_WITHOUT_LIST_MS = 10_000;

/** A running driver. */
export interface KeepalivedDriver {
  /** True once the first list has been rendered. */
  synced(): boolean;
  /** Resolves when no render is running or waiting (for tests). */
  whenRendered(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the driver; throws when the directories cannot be made or written. */
export async function startKeepalivedDriver(
  options: KeepalivedOptions,
  context: { agent: string; namespace: string; fifo: string; connection: Connection },
  metrics: AgentMetrics,
  log: Logger,
): Promise<KeepalivedDriver> {
  const files = new KeepalivedFiles(options.configDir, options.fenceDir);
  await files.init();
  let changed = await files.write(
    join(options.configDir, GLOBAL_FILE),
    renderGlobalConfig({ fifo: context.fifo }),
  );
  const mainConfig = join(options.configDir, MAIN_CONFIG_FILE);
  if (options.run) changed = (await files.write(mainConfig, renderMainConfig(options.configDir))) || changed;

  const keepalived = new KeepalivedProcess({
    pidFile: options.pidFile,
    ...(options.run ? { run: { mainConfig, ...(options.binary ? { binary: options.binary } : {}) } } : {}),
    log,
  });
  const throttle = new ReloadThrottle(RELOAD_INTERVAL_MS, () => {
    if (keepalived.reload()) metrics.keepalivedReloads.inc();
  });

  const transport = new ApiTransport(context.connection, { maxInFlight: 2, maxWatches: 1 });
  const informer = new Informer<HARouter>({
    name: 'harouters',
    raw: transport.request,
    watch: transport.watch,
    path: collectionPath({
      group: GROUP,
      version: VERSION,
      plural: HAROUTER.plural,
      namespace: context.namespace,
    }),
    schema: harouterSchema as SafeParser<HARouter>,
    log,
  });

  let synced = false;
  let keepalivedStarted = false;
  const startKeepalived = () => {
    keepalivedStarted = options.run;
    keepalived.start();
  };
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const skippedLogged = new Map<string, string>();

  const render = async () => {
    const { routers, skipped } = desiredRouters(informer.list(), context.agent, options.fenceDir);
    const nowSkipped = new Map<string, string>();
    for (const s of skipped) {
      const key = `${s.namespace}/${s.routerId}`;
      const what = `${s.reason}:${s.detail ?? ''}`;
      nowSkipped.set(key, what);
      if (skippedLogged.get(key) !== what)
        log.warn(
          { namespace: s.namespace, router: s.routerId, reason: s.reason, detail: s.detail },
          'router not rendered',
        );
    }
    skippedLogged.clear();
    for (const [key, what] of nowSkipped) skippedLogged.set(key, what);
    const result = await files.apply(routers);
    metrics.renderedRouters.set(result.rendered);
    // A keepalived the agent has not started yet reads the files as they are when it starts.
    if ((result.configChanged || changed) && (!options.run || keepalivedStarted)) throttle.request();
    changed = false;
    if (result.configChanged || result.fencesWritten > 0)
      log.info(
        {
          rendered: result.rendered,
          configChanged: result.configChanged,
          fencesWritten: result.fencesWritten,
        },
        'keepalived files written',
      );
  };

  const schedule = () => {
    if (!informer.hasSynced() || stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        await new Promise((resolve) => setImmediate(resolve));
        try {
          await render();
          if (!synced) {
            synced = true;
            startKeepalived();
          }
        } catch (error) {
          log.error(
            { problem: (error as Error).message, configDir: options.configDir },
            'keepalived files not written; retrying at the next change',
          );
        }
      } while (again && !stopped);
      running = undefined;
    })();
  };

  informer.addEventHandler({ add: schedule, update: schedule, delete: schedule });
  informer.start();
  void informer.waitForSync().then((ok) => ok && schedule());
  const startAnyway = setTimeout(() => {
    if (!synced && options.run) {
      log.warn(
        { waitedMs: START_WITHOUT_LIST_MS },
        'HARouters not listed yet; starting keepalived with the files on disk',
      );
      startKeepalived();
    }
  }, START_WITHOUT_LIST_MS);
  startAnyway.unref();

  log.info({ ...options, namespace: context.namespace }, 'rendering keepalived configuration from HARouters');
  return {
    synced: () => synced,
    async whenRendered() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      clearTimeout(startAnyway);
      throttle.stop();
      await informer.stop();
      while (running) await running;
      await keepalived.stop();
      await transport.close();
    },
  };
}
