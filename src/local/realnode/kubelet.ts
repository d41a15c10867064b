import { NODE_NETWORK } from './network.ts';

/** Paths and names a kubelet's configuration refers to. */
export interface KubeletPaths {
  clientCaFile: string;
  containerdSocket: string;
  podLogsDir: string;
  /** The cgroup (in every v1 hierarchy) under which the kubelet makes its `kubepods` tree. */
  cgroupRoot: string;
}

/**
 * The KubeletConfiguration of the node. Pure. This machine has cgroup v1 and no systemd:
 * the cgroupfs driver, and `failCgroupV1: false` (kubelet 1.35+ refuses cgroup v1 without
 * it); swap is tolerated. Clients are authenticated by the control plane's CA or a token
 * review and authorized by the API server (webhook), never anonymously. Every port binds
 * the node's own address; its pods live under a cgroup of their own. Eviction and image
 * garbage collection are relaxed so that a small or busy disk never evicts the tier's pods.
 */
export function kubeletConfig(paths: KubeletPaths): object {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NODE_NETWORK.address,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: NODE_NETWORK.address,
    healthzPort: 10248,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: paths.clientCaFile },
    },
    authorization: { mode: 'Webhook' },
    cgroupDriver: 'cgroupfs',
    cgroupRoot: paths.cgroupRoot,
    failCgroupV1: false,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${paths.containerdSocket}`,
    podLogsDir: paths.podLogsDir,
    clusterDomain: 'cluster.local',
    resolvConf: '/etc/resolv.conf',
    serializeImagePulls: false,
    evictionHard: {
      'memory.available': '1Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    protectKernelDefaults: false,
    makeIPTablesUtilChains: true,
    shutdownGracePeriod: '0s',
    registerNode: true,
  };
}
