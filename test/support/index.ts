/** What integration tests use: the run's control plane, namespaces and real tokens. */

export { issueServingCert } from '../../src/local/controlplane/index.ts';
export * from './cluster.ts';
