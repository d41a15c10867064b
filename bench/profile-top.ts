/**
 * Summarizes a V8 `.cpuprofile` (from `npm run bench -- --cpu-prof DIR`): the
 * functions with the most self time, and the share of time by package.
 *
 *   node bench/profile-top.ts DIR/file.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/profile-top.ts <file.cpuprofile> [top]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
const hits = new Map<number, number>();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const total = profile.samples.length;
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const node of profile.nodes) {
  const n = hits.get(node.id) ?? 0;
  if (n === 0) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.replace(/^.*node_modules\//, '').replace(/^.*\/(src|bench)\//, '$1/');
  const name = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + n);
  const pkg = url.includes('node_modules/')
    ? (url
        .split('node_modules/')
        .at(-1)
        ?.split('/')
        .slice(0, url.includes('/@') ? 2 : 1)
        .join('/') ?? '?')
    : url.includes('/src/')
      ? `src/${url.split('/src/').at(-1)?.split('/')[0]}`
      : url.startsWith('node:')
        ? 'node:internal'
        : functionName.startsWith('(')
          ? functionName
          : 'other';
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + n);
}
const top = Number(topArg ?? 25);
const pct = (n: number) => `${((100 * n) / total).toFixed(1)}%`;
process.stdout.write(`samples: ${total}\n\nby package:\n`);
for (const [k, v] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15))
  process.stdout.write(`  ${pct(v).padStart(6)} ${k}\n`);
process.stdout.write('\nby function (self time):\n');
for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top))
  process.stdout.write(`  ${pct(v).padStart(6)} ${k}\n`);
