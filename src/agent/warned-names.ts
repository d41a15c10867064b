/**
 * Which keepalived names the agent has already warned about, in bounded memory.
 * Names come from whoever can write the FIFO, up to 4 KiB each: kept whole,
 * 10,000 of them held about 40 MB. Here each is kept as a 64-bit digest (a
 * short fixed-size string), and at most `max` of them; past that no new name
 * is warned about (the lines are still counted as unmapped).
 */
import { createHash } from 'node:crypto';

/** See the module comment. */
export class WarnedNames {
  readonly #max: number;
  readonly #seen = new Set<string>();

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('max must be an integer >= 1');
    this.#max = max;
  }

  /** Names remembered (at most `max`). */
  get size(): number {
    return this.#seen.size;
  }

  /** True the first time `name` is offered, while fewer than `max` names are remembered. */
  firstTime(name: string): boolean {
    if (this.#seen.size >= this.#max) return false;
    const digest = createHash('sha256').update(name).digest('base64url').slice(0, 11);
    if (this.#seen.has(digest)) return false;
    this.#seen.add(digest);
    return true;
  }
}
