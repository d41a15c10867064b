/** Paths of a containerd of its own, none of them machine-wide. */
export interface ContainerdPaths {
  root: string;
  state: string;
  socket: string;
  cniBinDir: string;
  cniConfDir: string;
  runc: string;
  /** The pod sandbox image, imported beforehand (nothing is pulled). */
  sandboxImage: string;
}

/**
 * containerd's configuration (version 3) for a node on this machine. Pure.
 * - `restrict_oom_score_adj`: root here lacks CAP_SYS_RESOURCE, so runc cannot give a sandbox
 *   its negative oom_score_adj; without it every sandbox fails with `can't get final child's
 *   PID from pipe: EOF` (runc's log: `failed to update /proc/self/oom_score_adj: Permission denied`).
 * - `netns_mounts_under_state_dir`: pod network namespaces stay out of the machine-wide /run/netns.
 * - `SystemdCgroup = false`: the kubelet uses the cgroupfs driver (cgroup v1, no systemd here).
 * - a pinned sandbox image, and no NRI and no TCP stream service.
 */
export function containerdConfig(paths: ContainerdPaths): string {
  const q = (value: string) => JSON.stringify(value);
  return `version = 3
root = ${q(paths.root)}
state = ${q(paths.state)}
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = ${q(paths.socket)}

[ttrpc]
  address = ${q(`${paths.socket}.ttrpc`)}

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${q(paths.sandboxImage)}

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    disable_apparmor = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = ${q(paths.runc)}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [${q(paths.cniBinDir)}]
      conf_dir = ${q(paths.cniConfDir)}

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
`;
}
