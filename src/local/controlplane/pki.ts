import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (error) {
    throw new Error(`openssl ${args[0]} failed: ${(error as { stderr?: string }).stderr ?? error}`);
  }
}

/** A certificate and its private key, as files (keys are written 0600). */
export interface KeyPair {
  readonly certPath: string;
  readonly keyPath: string;
}

/** The files of a local control plane's public-key infrastructure. */
export interface Pki {
  readonly dir: string;
  /** The one CA that signs the serving certificates and the admin client certificate. */
  readonly ca: KeyPair;
  readonly apiserver: KeyPair;
  /** Client certificate in group `system:masters`. */
  readonly admin: KeyPair;
  /** RSA key that signs and verifies service-account tokens. */
  readonly serviceAccountKeyPath: string;
  /**
   * etcd's own CA, its serving certificate, and the one client certificate it
   * accepts (kube-apiserver's, also used by the chaos run): etcd serves TLS with
   * client-certificate authentication only, so no other local user can bypass
   * RBAC and admission.
   */
  readonly etcd: { readonly ca: KeyPair; readonly server: KeyPair; readonly client: KeyPair };
  /**
   * The CA of the API server's client certificate for admission webhooks, and that
   * certificate: a webhook started with `--webhook-client-ca` set to this CA accepts
   * the API server and refuses every other caller at the TLS handshake. A CA of its
   * own, so that no other certificate of this PKI (the admin's) passes as the API server.
   */
  readonly webhookClient: { readonly ca: KeyPair; readonly client: KeyPair };
}

async function newKey(path: string, cwd: string): Promise<void> {
  await openssl(['genrsa', '-out', path, '2048'], cwd);
  await chmod(path, 0o600);
}

async function signed(
  dir: string,
  name: string,
  subject: string,
  extensions: string[],
  ca: KeyPair,
): Promise<KeyPair> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await newKey(keyPath, dir);
  await writeFile(ext, `${extensions.join('\n')}\n`);
  await openssl(['req', '-new', '-key', keyPath, '-subj', subject, '-out', csr], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.certPath,
      '-CAkey',
      ca.keyPath,
      '-CAcreateserial',
      '-days',
      '365',
    ].concat(['-extfile', ext, '-out', certPath]),
    dir,
  );
  return { certPath, keyPath };
}

/**
 * Issues a TLS serving certificate signed by the given CA, for the given IPs and
 * DNS names (Go clients need `IP:127.0.0.1` in the SANs; they never fall back to
 * the CN). Used for the operator's webhook in tests and in local mode.
 */
export async function issueServingCert(options: {
  ca: KeyPair;
  dir: string;
  name?: string;
  ips?: string[];
  dnsNames?: string[];
  /** Also a client certificate (etcd's gRPC gateway dials etcd's own gRPC server with the serving pair). */
  clientAuth?: boolean;
}): Promise<KeyPair> {
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const ips = options.ips ?? ['127.0.0.1'];
  const dnsNames = options.dnsNames ?? ['localhost'];
  const san = [...ips.map((ip) => `IP:${ip}`), ...dnsNames.map((dns) => `DNS:${dns}`)].join(',');
  return signed(
    options.dir,
    options.name ?? 'serving',
    `/CN=${dnsNames[0] ?? ips[0]}`,
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      options.clientAuth ? 'extendedKeyUsage=serverAuth,clientAuth' : 'extendedKeyUsage=serverAuth',
      `subjectAltName=${san}`,
    ],
    options.ca,
  );
}

/**
 * Issues a client certificate signed by `ca` for `subject` (`/O=<group>/CN=<user>`):
 * a kubelet's `system:node:<name>` in `system:nodes`, kube-proxy's `system:kube-proxy`.
 */
export async function issueClientCert(options: {
  ca: KeyPair;
  dir: string;
  name: string;
  subject: string;
}): Promise<KeyPair> {
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  return signed(options.dir, options.name, options.subject, CLIENT_EXTENSIONS, options.ca);
}

const CLIENT_EXTENSIONS = [
  'basicConstraints=CA:FALSE',
  'keyUsage=critical,digitalSignature,keyEncipherment',
  'extendedKeyUsage=clientAuth',
];

/**
 * Creates a self-signed CA in `dir` (`<name>.crt`, `<name>.key`): the control
 * plane's own, or a second one when the chaos run rotates the webhook's CA.
 */
export async function createCa(
  dir: string,
  name = 'ca',
  subject = '/CN=harouter-local-ca',
): Promise<KeyPair> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = { certPath: join(dir, `${name}.crt`), keyPath: join(dir, `${name}.key`) };
  await newKey(ca.keyPath, dir);
  await openssl(
    ['req', '-x509', '-new', '-key', ca.keyPath, '-days', '3650', '-subj', subject]
      .concat(['-addext', 'basicConstraints=critical,CA:TRUE'])
      .concat(['-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature', '-out', ca.certPath]),
    dir,
  );
  return ca;
}

/**
 * Creates a fresh PKI in `dir`: a CA, the API server's serving certificate
 * (127.0.0.1, localhost, the in-cluster names and `apiServerIps`), an admin client certificate
 * in `system:masters` (which bypasses RBAC, as envtest's admin does), the
 * service-account signing key, etcd's separate CA with its server and
 * client certificates, and the API server's client certificate for admission
 * webhooks with a CA of its own.
 */
export async function createPki(dir: string, apiServerIps: readonly string[] = ['10.0.0.1']): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa(dir);
  const apiserver = await issueServingCert({
    ca,
    dir,
    name: 'apiserver',
    ips: ['127.0.0.1', ...apiServerIps],
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
  });
  const admin = await signed(dir, 'admin', '/O=system:masters/CN=harouter-admin', CLIENT_EXTENSIONS, ca);
  const serviceAccountKeyPath = join(dir, 'service-account.key');
  await newKey(serviceAccountKeyPath, dir);
  const etcdCa = await createCa(dir, 'etcd-ca', '/CN=harouter-local-etcd-ca');
  // etcd's JSON gateway (`/v3/...`, the chaos run's compaction) reaches etcd's gRPC server with this
  // pair, and client-certificate authentication refuses a certificate that is not also a client's.
  const etcdServer = await issueServingCert({ ca: etcdCa, dir, name: 'etcd-server', clientAuth: true });
  const etcdClient = await signed(
    dir,
    'etcd-client',
    '/CN=kube-apiserver-etcd-client',
    CLIENT_EXTENSIONS,
    etcdCa,
  );
  const webhookClientCa = await createCa(dir, 'webhook-client-ca', '/CN=harouter-local-webhook-client-ca');
  const webhookClient = await signed(
    dir,
    'apiserver-webhook-client',
    '/CN=kube-apiserver-webhook-client',
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=clientAuth',
    ],
    webhookClientCa,
  );
  return {
    dir,
    ca,
    apiserver,
    admin,
    serviceAccountKeyPath,
    etcd: { ca: etcdCa, server: etcdServer, client: etcdClient },
    webhookClient: { ca: webhookClientCa, client: webhookClient },
  };
}

/** A file's content as base64, for kubeconfig `*-data` fields and webhook `caBundle`s. */
export async function base64File(path: string): Promise<string> {
  return (await readFile(path)).toString('base64');
}
