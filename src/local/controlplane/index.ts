/** A real local Kubernetes control plane for tests, the local mode and benchmarks. */
export * from './binaries.ts';
export * from './control-plane.ts';
export { base64File, createCa, issueClientCert, issueServingCert, type KeyPair, type Pki } from './pki.ts';
export { freePort, type ManagedProcess, startProcess, tailLog, waitUntil } from './process.ts';
