/**
 * Preloaded with `node --import <this file>`: records the URL of every module the
 * process loads (ES modules and CommonJS alike, through `module.registerHooks`) and
 * writes them, one per line, to the file named by `HAROUTER_RECORD_MODULES` when the
 * process exits. Used to prove what a program never loads (test/unit/operator-modules.test.ts).
 */
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.HAROUTER_RECORD_MODULES;
const loaded = new Set<string>();

registerHooks({
  load(url, context, nextLoad) {
    loaded.add(url);
    return nextLoad(url, context);
  },
});

process.on('exit', () => {
  if (out) writeFileSync(out, `${[...loaded].join('\n')}\n`);
});
