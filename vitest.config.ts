import { defineConfig } from 'vitest/config';

/**
 * Four tiers: `unit` (pure code, no processes, fast), `integration` (one real
 * kube-apiserver + etcd + kube-controller-manager per run, started by the global
 * setup; each file works in its own namespace), `e2e` (real keepalived in
 * network namespaces driving the real operator process; needs root and
 * keepalived), which runs after the other two, one file at a time, and `node`
 * (the chart installed with helm on a real kubelet from the image built from the
 * Dockerfile; needs root), last.
 */
export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Some unit files run helm or promtool as processes: 5 s is too short on a loaded 2-core machine.
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 240_000,
          hookTimeout: 180_000,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          // The first run on a machine builds the image's base (about 4 min) before the node starts.
          testTimeout: 300_000,
          hookTimeout: 900_000,
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
