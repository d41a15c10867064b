import { mkdir, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Machine-wide settings a node changes: IPv4 forwarding (a pod reaching another pod
 * through a Service is routed by this machine) and the kernel settings the kubelet
 * sets at start (`protectKernelDefaults: false`). Each is restored when the node stops.
 */
export const CHANGED_SYSCTLS = [
  'net/ipv4/ip_forward',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
] as const;

/** The values of {@link CHANGED_SYSCTLS} now, to be written back by {@link restoreSysctls}. */
export async function snapshotSysctls(): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (const name of CHANGED_SYSCTLS) {
    try {
      values.set(name, (await readFile(join('/proc/sys', name), 'utf8')).trim());
    } catch {
      // not on this kernel: nothing to restore
    }
  }
  return values;
}

/** Writes back what {@link snapshotSysctls} read; a value that cannot be written is reported. */
export async function restoreSysctls(values: Map<string, string>): Promise<string[]> {
  const failed: string[] = [];
  for (const [name, value] of values) {
    try {
      if ((await readFile(join('/proc/sys', name), 'utf8')).trim() !== value)
        await writeFile(join('/proc/sys', name), value);
    } catch (error) {
      failed.push(`${name}: ${(error as Error).message}`);
    }
  }
  return failed;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Paths the kubelet and the CNI library use whatever their configuration says
 * (device plugins' sockets, container log links, the CNI result cache). Those that do
 * not exist before the node starts are removed when it stops.
 */
export const FIXED_PATHS = ['/var/lib/kubelet', '/var/log/containers', '/var/lib/cni'] as const;

/** The {@link FIXED_PATHS} that do not exist yet (the node's to remove). */
export async function absentFixedPaths(): Promise<string[]> {
  const absent: string[] = [];
  for (const path of FIXED_PATHS) if (!(await exists(path))) absent.push(path);
  return absent;
}

/** Removes `paths` (recursively). */
export async function removePaths(paths: readonly string[]): Promise<void> {
  for (const path of paths) await rm(path, { recursive: true, force: true });
}

/**
 * Creates the cgroup `name` in every v1 hierarchy: the kubelet refuses a `cgroupRoot`
 * that does not exist. A new cpuset cgroup has no CPUs or memory nodes until given
 * its parent's (no task could join it otherwise).
 */
export async function createCgroup(name: string): Promise<void> {
  for (const hierarchy of await readdir('/sys/fs/cgroup')) {
    if (hierarchy === 'unified') continue;
    const dir = join('/sys/fs/cgroup', hierarchy, name);
    await mkdir(dir, { recursive: true });
    if (hierarchy === 'cpuset')
      for (const file of ['cpuset.cpus', 'cpuset.mems'])
        await writeFile(join(dir, file), await readFile(join('/sys/fs/cgroup', hierarchy, file), 'utf8'));
  }
}

/** Removes the cgroup `name` (and the cgroups under it) from every v1 hierarchy; they must be empty of tasks. */
export async function removeCgroup(name: string): Promise<void> {
  const removeTree = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }))
      if (entry.isDirectory()) await removeTree(join(dir, entry.name));
    await rmdir(dir);
  };
  for (const hierarchy of await readdir('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', hierarchy, name);
    if (await exists(dir)) await removeTree(dir).catch(() => {});
  }
}

/** Mount points at or under `dir`, deepest first (to unmount in that order). Pure. */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(`${dir}/`)))
    .map((point) => point.replace(/\\040/g, ' '));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}
