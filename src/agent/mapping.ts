/**
 * Which router a keepalived instance or group reports on. Pure: parsing the
 * `--instance` values and the `--instances` file's content, and the lookup.
 */
import { parseDocument } from 'yaml';
import { isRouterId } from '../api/validation.ts';
import { NAMESPACE_PATTERN } from '../report/namespace.ts';

/** The router a name maps to. */
export interface RouterRef {
  namespace: string;
  router: string;
}

/** keepalived names to `[NAMESPACE/]ROUTERID` targets, before the default namespace is applied. */
export type InstanceTargets = ReadonlyMap<string, { namespace?: string; router: string }>;

/** Reads one target, `[NAMESPACE/]ROUTERID`; returns an error text when malformed. */
export function parseTarget(text: string): { namespace?: string; router: string } | { error: string } {
  const slash = text.indexOf('/');
  const namespace = slash === -1 ? undefined : text.slice(0, slash);
  const router = slash === -1 ? text : text.slice(slash + 1);
  if (namespace !== undefined && !NAMESPACE_PATTERN.test(namespace)) {
    return { error: 'the namespace is not a namespace name (DNS-1123 label)' };
  }
  if (!isRouterId(router)) return { error: 'the router id is not a lower-case canonical UUID' };
  return namespace === undefined ? { router } : { namespace, router };
}

/**
 * Reads `--instance NAME=[NAMESPACE/]ROUTERID` values (split at the last `=`,
 * so a name may hold one). Returns the map or the first error, naming the
 * value's position (never echoing it: it came from the command line, but the
 * same code reads files).
 */
export function parseInstanceFlags(values: readonly string[]): InstanceTargets | { error: string } {
  const map = new Map<string, { namespace?: string; router: string }>();
  for (const [index, value] of values.entries()) {
    const eq = value.lastIndexOf('=');
    if (eq <= 0) return { error: `--instance #${index + 1} must be NAME=[NAMESPACE/]ROUTERID` };
    const target = parseTarget(value.slice(eq + 1));
    if ('error' in target) return { error: `--instance #${index + 1}: ${target.error}` };
    map.set(value.slice(0, eq), target);
  }
  return map;
}

/**
 * Reads the `--instances` file: a YAML or JSON mapping of instance or group
 * names to `[NAMESPACE/]ROUTERID`. Errors name the entry's key position and
 * the YAML parser's code and line, never the file's content.
 */
export function parseInstancesFile(text: string): InstanceTargets | { error: string } {
  const doc = parseDocument(text, { logLevel: 'silent' });
  const [first] = doc.errors;
  if (first) {
    const at = first.linePos?.[0];
    return { error: `not valid YAML: ${first.code}${at ? ` at line ${at.line}, column ${at.col}` : ''}` };
  }
  let content: unknown;
  try {
    content = doc.toJS();
  } catch {
    return { error: 'not valid YAML' };
  }
  if (content === null || content === undefined) return new Map();
  if (typeof content !== 'object' || Array.isArray(content)) {
    return { error: 'must be a mapping of instance names to [NAMESPACE/]ROUTERID' };
  }
  const map = new Map<string, { namespace?: string; router: string }>();
  for (const [index, [name, value]] of Object.entries(content).entries()) {
    if (typeof value !== 'string') return { error: `entry #${index + 1}: the value must be a string` };
    const target = parseTarget(value);
    if ('error' in target) return { error: `entry #${index + 1}: ${target.error}` };
    map.set(name, target);
  }
  return map;
}

/**
 * The lookup: the `--instance` flags win over the file; a name that is itself
 * a canonical router UUID maps to that router in the default namespace.
 */
export class InstanceMap {
  private readonly flags: InstanceTargets;
  private file: InstanceTargets;
  private readonly defaultNamespace: string;

  constructor(flags: InstanceTargets, file: InstanceTargets, defaultNamespace: string) {
    this.flags = flags;
    this.file = file;
    this.defaultNamespace = defaultNamespace;
  }

  /** Replaces the file's part (the file changed). */
  replaceFile(file: InstanceTargets): void {
    this.file = file;
  }

  /** The router for a keepalived name, or undefined when it is not mapped. */
  resolve(name: string): RouterRef | undefined {
    const target = this.flags.get(name) ?? this.file.get(name);
    if (target) return { namespace: target.namespace ?? this.defaultNamespace, router: target.router };
    return isRouterId(name) ? { namespace: this.defaultNamespace, router: name } : undefined;
  }
}
