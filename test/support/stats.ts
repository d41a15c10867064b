/**
 * The `p`th percentile (0-100) of `values`, by nearest rank (the value at index
 * `floor(p / 100 * n)` of the sorted values); NaN when there are none. Shared by
 * the benchmarks and the chaos run, so their percentiles mean the same thing.
 */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
