import type { Reporter, TestModule } from 'vitest/node';

/**
 * Ends a run with one plain line, `N passed, N failed` (and `, N skipped` when
 * any), per project and in total, so that CI logs state what ran at a glance.
 * A file that fails outside its tests counts as one failure.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byProject = new Map<string, { passed: number; failed: number; skipped: number }>();
    const total = { passed: 0, failed: 0, skipped: 0 };
    for (const module of testModules) {
      const name = module.project.name || 'default';
      const counts = byProject.get(name) ?? { passed: 0, failed: 0, skipped: 0 };
      byProject.set(name, counts);
      let failedInModule = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        const key = state === 'passed' ? 'passed' : state === 'failed' ? 'failed' : 'skipped';
        if (key === 'failed') failedInModule++;
        counts[key]++;
        total[key]++;
      }
      // A file that failed outside its tests (an import, a beforeAll) leaves them "skipped":
      // the file itself is counted as one failure so the line never reads 0 failed.
      if (module.state() === 'failed' && failedInModule === 0) {
        counts.failed++;
        total.failed++;
      }
    }
    const line = (c: typeof total) =>
      `${c.passed} passed, ${c.failed} failed${c.skipped ? `, ${c.skipped} skipped` : ''}`;
    for (const [name, counts] of byProject) process.stdout.write(`${name}: ${line(counts)}\n`);
    process.stdout.write(`${line(total)}\n`);
  }
}
