/**
 * A Map that never holds more than `max` entries: setting a new key past the
 * bound drops the least recently used one (`get` and `set` count as use). For
 * caches keyed by what strangers send (tokens, addresses, names), so that no
 * input can grow memory without bound.
 */
export class BoundedMap<K, V> {
  readonly #max: number;
  readonly #entries = new Map<K, V>();

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('max must be an integer >= 1');
    this.#max = max;
  }

  /** Entries held now (at most `max`). */
  get size(): number {
    return this.#entries.size;
  }

  /** The value of `key`, marked as the most recently used. */
  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Sets `key` as the most recently used, dropping the least recently used entries past the bound. */
  set(key: K, value: V): this {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value as K);
    return this;
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }
}
