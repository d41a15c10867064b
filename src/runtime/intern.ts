/**
 * Strings that many cached objects share (the namespace, node and router names,
 * `apiVersion`, condition types and reasons, timestamps of the same second) come
 * out of `JSON.parse` as a separate copy in every object: at 10,000 routers the
 * caches held tens of thousands of copies of each. Interning replaces each with
 * V8's internalized string of the same text (the one a property key with that
 * text uses), so equal strings are stored once. V8's string table holds its
 * strings weakly: one that no object uses any more is collected, so nothing
 * leaks. Values never change, only where they are stored.
 */

/** The internalized string equal to `text`. */
export function internString(text: string): string {
  const holder = { [text]: 0 };
  for (const key in holder) return key;
  return text;
}

/**
 * Interns, in place, every string of at most `maxLength` characters in a parsed
 * JSON value (object values and array items, at any depth; longer strings, such
 * as messages, are mostly unique and left alone) and returns the value. For
 * values the caller owns, fresh from `JSON.parse`: it mutates them.
 */
export function internStrings<T>(value: T, maxLength = 256): T {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = internValue(value[i], maxLength);
  } else if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = internValue(record[key], maxLength);
  }
  return value;
}

function internValue(value: unknown, maxLength: number): unknown {
  if (typeof value === 'string') return value.length <= maxLength ? internString(value) : value;
  if (value !== null && typeof value === 'object') return internStrings(value, maxLength);
  return value;
}
