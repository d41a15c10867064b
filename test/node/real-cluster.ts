/**
 * The node tier's cluster: the operator image built from the Dockerfile (`npm run
 * image`), a control plane that serves a real node, and that node (containerd,
 * kubelet, kube-proxy, CNI) with the images imported. Plus the small HTTP helpers
 * the scenarios use: they talk to the API server and the Services as any client does.
 */
import { mkdtemp } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../../src/local/controlplane/index.ts';
import { buildImage, imageArchives } from '../../src/local/realnode/image.ts';
import { type RealNode, startRealNode } from '../../src/local/realnode/index.ts';

/** Builds the image, then starts the control plane and the real node with the images imported. */
export async function startNodeCluster(progress: (line: string) => void): Promise<RealNode> {
  await buildImage(progress);
  const dir = await mkdtemp(join(tmpdir(), 'harouter-node-'));
  const images = imageArchives();
  return startRealNode({
    dir,
    images: [images.sandbox, images.operator],
    controlPlane: (servesNode) =>
      startControlPlane({ dir: join(dir, 'control-plane'), servesNode, buildProgress: progress }),
    buildProgress: progress,
  });
}

/** An HTTPS answer: status and body. */
export interface Answer {
  status: number;
  body: string;
}

/**
 * One HTTPS request; never rejects on an HTTP status. `ca` verifies the server, or
 * none is verified (the operator's metrics certificate is self-signed).
 */
export function httpsRequest(
  url: string,
  options: { method?: string; token?: string; ca?: Buffer; body?: string; contentType?: string },
): Promise<Answer> {
  return new Promise((done, fail) => {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.contentType) headers['content-type'] = options.contentType;
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers,
        ...(options.ca ? { ca: options.ca } : { rejectUnauthorized: false }),
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', fail);
    req.end(options.body);
  });
}
