/**
 * A TLS server's certificate from a directory (`tls.crt`, `tls.key`, as a Secret volume mounts
 * them), reloaded when the files change. Polled rather than watched: a Secret volume swaps a
 * `..data` symlink, which file watches miss. A new pair that fails to load is logged and the old
 * one kept, so a half-written rotation never takes the server down.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type Server } from 'node:tls';
import type { Logger } from '../log.ts';

/** A certificate chain and its private key, PEM. */
export interface CertificatePair {
  cert: Buffer;
  key: Buffer;
}

/** Reads `tls.crt` and `tls.key` from `dir`; rejects when either is missing or they do not make a usable pair. */
export async function readCertificatePair(dir: string): Promise<CertificatePair> {
  const [cert, key] = await Promise.all([readFile(join(dir, 'tls.crt')), readFile(join(dir, 'tls.key'))]);
  createSecureContext({ cert, key }); // throws when the pair is unusable
  return { cert, key };
}

/** A running reload of a server's certificate; see {@link reloadCertificateFromDir}. */
export interface CertificateReloader {
  /** Reads the directory now; resolves true when a new pair was loaded, false when unchanged or unusable. */
  reload(): Promise<boolean>;
  /** Stops polling. */
  stop(): void;
}

/**
 * Polls `dir` every `intervalMs` and gives `server` the new pair when the files change.
 * `current` is the pair the server was started with; `log` names the server in its own fields.
 */
export function reloadCertificateFromDir(
  server: Server,
  options: {
    dir: string;
    current: CertificatePair;
    log: Logger;
    intervalMs?: number;
    /** The CA that client certificates must chain to, kept in every new context (the webhook's client CA). */
    ca?: Buffer;
  },
): CertificateReloader {
  const { dir, log } = options;
  let current = options.current;
  const reload = async (): Promise<boolean> => {
    let next: CertificatePair;
    try {
      next = await readCertificatePair(dir);
    } catch (err) {
      log.warn({ err: { message: (err as Error).message }, certDir: dir }, 'keeping the old certificate');
      return false;
    }
    if (next.cert.equals(current.cert) && next.key.equals(current.key)) return false;
    server.setSecureContext({
      cert: next.cert,
      key: next.key,
      ...(options.ca ? { ca: options.ca } : {}),
      minVersion: 'TLSv1.2',
    });
    current = next;
    log.info({ certDir: dir }, 'certificate reloaded');
    return true;
  };
  let reloading = false;
  const timer = setInterval(() => {
    if (reloading) return;
    reloading = true;
    reload().finally(() => {
      reloading = false;
    });
  }, options.intervalMs ?? 10_000);
  timer.unref();
  return { reload, stop: () => clearInterval(timer) };
}
