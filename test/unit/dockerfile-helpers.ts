/**
 * The Dockerfile and .dockerignore as data, for the tests that read them
 * (test/unit/dockerfile.test.ts) and the one that runs the build's steps
 * (test/unit/dockerfile-build.test.ts).
 */

/** One Dockerfile instruction: its keyword (upper case), its arguments, and the line it starts on. */
export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Splits a Dockerfile into instructions (line continuations joined, comments dropped). */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending !== '' && line.startsWith('#')) return;
    if (pending === '') start = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const match = /^(\S+)\s*(.*)$/.exec(full);
    if (match)
      instructions.push({
        keyword: (match[1] as string).toUpperCase(),
        args: match[2] as string,
        line: start,
      });
  });
  return instructions;
}

/** The instructions of each stage, by stage (the global ARGs before the first FROM are stage -1). */
export function stages(instructions: Instruction[]): { from: Instruction; body: Instruction[] }[] {
  const result: { from: Instruction; body: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') result.push({ from: instruction, body: [] });
    else result.at(-1)?.body.push(instruction);
  }
  return result;
}

/**
 * A .dockerignore matcher (the rules of moby's patternmatcher that matter here: `*` within a
 * path segment, `**` across segments, `!` re-includes, the last matching rule wins, and a
 * pattern also matches everything under a matched directory).
 */
export function dockerignoreExcludes(patterns: string[], path: string): boolean {
  let excluded = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+/, '').replace(/\/+$/, '');
    if (pattern === '') continue;
    const regex = pattern
      .split('/')
      .map((segment) =>
        segment === '**'
          ? '.*'
          : segment
              .replaceAll(/[.+^${}()|[\]\\]/g, '\\$&')
              .replaceAll('*', '[^/]*')
              .replaceAll('?', '[^/]'),
      )
      .join('/')
      .replaceAll('.*/', '(.*/)?');
    if (new RegExp(`^${regex}(/.*)?$`).test(path)) excluded = !negate;
  }
  return excluded;
}

/** The rules of a .dockerignore file (comments and blank lines dropped). */
export function dockerignorePatterns(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}
