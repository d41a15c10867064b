import { defineConfig } from 'vitest/config';

/**
 * Two tiers: `unit` (pure code, no processes, fast) and `integration` (one real
 * kube-apiserver + etcd + kube-controller-manager per run, started by the global
 * setup; each file works in its own namespace).
 */
export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
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
    ],
  },
});
