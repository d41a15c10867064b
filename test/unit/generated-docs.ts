/**
 * Generated sections of the docs (between a start and an end marker), checked by the unit tests
 * that generate them. With `HAROUTER_UPDATE_DOCS=1` an out-of-date section is rewritten and the
 * test still fails, so that update mode never passes a check it did not make: run again without
 * the variable to see it pass. Under `CI` update mode is refused outright.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { expect } from 'vitest';
import { repoRoot } from './chart-helpers.ts';

/** Where a generated section lives and how to regenerate it. */
export interface GeneratedSection {
  /** The document holding the section. */
  docPath: string;
  /** The marker lines around the section. */
  start: string;
  end: string;
  /** The test file that generates it (for the regenerate command in failure messages). */
  testFile: string;
}

/**
 * Fails unless the section between the markers is exactly `expected` (trimmed). In update mode
 * (`HAROUTER_UPDATE_DOCS=1`, refused under `CI`) a differing section is rewritten first, and the
 * check fails anyway, naming the rewritten file.
 */
export function checkGeneratedSection(section: GeneratedSection, expected: string): void {
  const update = process.env.HAROUTER_UPDATE_DOCS === '1';
  const command = `HAROUTER_UPDATE_DOCS=1 npx vitest run ${section.testFile}`;
  const ci = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI);
  if (update && ci) {
    throw new Error('HAROUTER_UPDATE_DOCS=1 rewrites docs and is refused under CI: the check must run');
  }
  const doc = readFileSync(section.docPath, 'utf8');
  const from = doc.indexOf(section.start);
  const to = doc.indexOf(section.end);
  expect(from, `start marker ${section.start}`).toBeGreaterThanOrEqual(0);
  expect(to, `end marker ${section.end}`).toBeGreaterThan(from);
  const current = doc.slice(from + section.start.length, to).trim();
  if (update && current !== expected) {
    writeFileSync(
      section.docPath,
      `${doc.slice(0, from + section.start.length)}\n${expected}\n${doc.slice(to)}`,
    );
    throw new Error(
      `rewrote the generated section in ${relative(repoRoot, section.docPath)}: review the change, ` +
        `then run ${section.testFile} again without HAROUTER_UPDATE_DOCS`,
    );
  }
  expect(current, `run ${command}`).toBe(expected);
}
