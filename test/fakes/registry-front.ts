/**
 * An ECR-behaving front for docker-registry, for the engine suite.
 *
 * docker-registry 2.8 is more lenient than Amazon ECR: it creates repositories on push, lets any tag be overwritten,
 * and accepts image indexes that reference non-manifest blobs. Every engine test pushes through this front instead,
 * which refuses what ECR refuses (rules and sources: test/aws-contract.md), with ECR's error codes and messages,
 * and records every manifest write so that tests can count PUTs per tag:
 *
 * - a repository must exist before anything is pushed to it or read from it (`NAME_UNKNOWN`, HTTP 404);
 *   repositories are created through the control API with a tag mutability, like `CreateRepository`;
 * - in an IMMUTABLE repository a manifest PUT to a tag that exists is refused (`TAG_INVALID`, HTTP 400), even
 *   when the digest is the same;
 * - tags longer than ECR's maximum, or outside its pattern, are refused (`TAG_INVALID`);
 * - an index whose entries are not manifests (BuildKit's default cache export) is refused (`UNSUPPORTED`);
 * - a tag more on an image that already has `maxTagsPerImage` tags (ECR: 1000) is refused (`DENIED`, HTTP 403);
 * - cross-repository blob mounts are not done (ECR's blob mounting is an opt-in registry setting, off by default): the
 *   front drops `mount`/`from` from an upload request, so the client uploads the blob (`blobMounting` turns them on).
 *
 * Control API (loopback only, under /__front/):
 *   PUT    /__front/repositories/<name>   {"imageTagMutability":"IMMUTABLE"|"MUTABLE"}  create (409 if it exists)
 *   GET    /__front/repositories           the repositories
 *   GET    /__front/events[?repository=R]  manifest writes and refusals, oldest first
 *   GET    /__front/traffic[?repository=R] bytes pulled and pushed (blobs, manifests) and requests, per repository
 *   POST   /__front/faults                 add a FaultRule (the fault suite); GET lists them with their hits; DELETE clears
 *   DELETE /__front/faults?repository=R    clears the rules of one repository (and its outage, if one of them made it)
 *   GET    /__front/images?repository=R    the repository as ECR's DescribeImages would describe it (LedgerImage[]): the
 *                                         manifests pushed through the front and not deleted, their tags, push and pull times
 *
 * Run: node -r ts-node/register/transpile-only registry-front.ts --listen 127.0.0.1:5000 --upstream 127.0.0.1:5001
 */
import { createHash } from 'crypto';
import * as http from 'http';

export type TagMutability = 'MUTABLE' | 'IMMUTABLE';

/** One manifest write (or refusal) the front saw. */
export interface FrontEvent {
  readonly method: 'PUT' | 'DELETE';
  readonly repository: string;
  /** The tag or digest in the URL. */
  readonly reference: string;
  readonly status: number;
  /** The manifest digest the registry answered with (successful PUTs). */
  readonly digest?: string;
  /** ECR's error code, when the front refused the request. */
  readonly refused?: string;
  readonly at: number;
}

export interface Endpoint { readonly host: string; readonly port: number }

/** A fault the front injects into the requests it forwards (the fault suite's injections). */
export type FaultKind = 'status-500' | 'status-503' | 'status-429' | 'reset' | 'stall' | 'truncate-upload' | 'unavailable' | 'delete-after-read';

/** Which requests a fault hits, and how often. */
export interface FaultRule {
  readonly fault: FaultKind;
  readonly repository: string;
  /** `read`: GET and HEAD; `write`: POST, PATCH, PUT and DELETE. */
  readonly direction: 'read' | 'write';
  /** Only manifests or only blobs. @default both */
  readonly kind?: 'manifests' | 'blobs';
  /** Matching requests to fault; then the rule is spent. @default 1 */
  readonly times?: number;
  /** Matching requests to let through first. @default 0 */
  readonly skip?: number;
  /** `stall`: how long; `unavailable`: how long every connection to the registry is dropped. @default 10 */
  readonly seconds?: number;
}

interface ActiveRule extends FaultRule { seen: number; hit: number }

/**
 * One manifest of a repository as ECR's DescribeImages reports it, kept from the traffic the front forwarded: what the
 * cache cleanup sees when the tests run it against a repository the engines wrote. Times are epoch milliseconds.
 */
export interface LedgerImage {
  readonly digest: string;
  readonly mediaType: string;
  /** The sum of the layer sizes (ECR's imageSizeInBytes); 0 for an index. */
  readonly sizeBytes: number;
  /** An index's manifests. */
  readonly children?: string[];
  tags: string[];
  readonly pushedAt: number;
  /** The last time an engine (not an observer) read the manifest, by tag or by digest. */
  lastPulledAt?: number;
}

/** Bytes through the front for one repository: what engines pulled and pushed (blobs and manifests). */
export interface Traffic {
  blobBytesPulled: number;
  blobBytesPushed: number;
  manifestBytesPulled: number;
  manifestBytesPushed: number;
  requests: number;
}

/**
 * A tag as the registry API takes it (OCI distribution spec, what ECR's registry endpoint follows): 1–128 of
 * `[A-Za-z0-9_.-]`, not starting with `.` or `-`. (ECR's own API allows 300 characters; a docker push cannot use them.)
 */
export const REGISTRY_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set([
  ...INDEX_TYPES, 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json',
]);
const ACCEPT_ALL = [...MANIFEST_TYPES].join(', ');
const ROUTE = /^\/v2\/(.+?)\/(manifests|blobs|tags)\/(.*)$/;
/** A request with this header is the tests' own (an observer): no fault, no traffic counted against the engines. */
export const OBSERVER_HEADER = 'x-cib-observer';

/** Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection: a proxy never passes them on. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = { ...headers };
  for (const h of HOP_BY_HOP) delete out[h];
  return out;
}

function registryError(res: http.ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ code, message, detail: null }] });
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Why ECR would refuse this manifest, or undefined. */
export function invalidManifestReason(body: Buffer): string | undefined {
  let parsed: { mediaType?: string; manifests?: Array<{ mediaType?: string; digest?: string }> };
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the manifest is not valid JSON';
  }
  if (!parsed.manifests) return undefined;
  for (const m of parsed.manifests) {
    if (!m.mediaType || !MANIFEST_TYPES.has(m.mediaType)) {
      return `the image index references ${m.digest ?? 'an entry'} of media type '${m.mediaType ?? ''}', which is not an image manifest`;
    }
  }
  return undefined;
}

export class RegistryFront {
  private readonly server: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly repositories = new Map<string, TagMutability>();
  private readonly events: FrontEvent[] = [];
  private readonly traffic = new Map<string, Traffic>();
  /** Per repository, the manifests pushed through the front and not deleted, by digest. */
  private readonly ledger = new Map<string, Map<string, LedgerImage>>();
  private rules: ActiveRule[] = [];
  /** While set, every registry request's connection is dropped (a registry restarting). */
  private unavailableUntil = 0;
  /** Manifest PUTs to one tag of an immutable repository run one at a time, so that exactly one of two racing pushes wins. */
  private readonly tagLocks = new Map<string, Promise<void>>();

  constructor(private readonly upstream: Endpoint, private readonly registryId = '123456789012', private readonly blobMounting = false,
    /** ECR's limit of tags on one image (test/aws-contract.md ECR22). */
    private readonly maxTagsPerImage = 1000) {
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch(e => {
        process.stderr.write(`registry front: ${req.method} ${req.url}: ${(e as Error).stack ?? String(e)}\n`);
        if (!res.headersSent) registryError(res, 500, 'UNKNOWN', `registry front: ${(e as Error).message}`);
        else res.destroy();
      });
    });
    // Longer than any client keeps an idle connection, so that the server never closes one a client is about to reuse.
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 66_000;
  }

  public listen(at: Endpoint): Promise<Endpoint> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(at.port, at.host, () => {
        const a = this.server.address() as { address: string; port: number };
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  public close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    return new Promise(resolve => this.server.close(() => resolve()));
  }

  public createRepository(name: string, mutability: TagMutability): boolean {
    if (this.repositories.has(name)) return false;
    this.repositories.set(name, mutability);
    return true;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://front');
    if (url.pathname.startsWith('/__front/')) return this.control(req, res, url);
    const m = ROUTE.exec(url.pathname);
    if (!m) {
      await this.forward(req, res);
      return;
    }
    const [, repository, kind, reference] = m;
    // The tests' own reads (counting blobs, reading tags) are never faulted: only the engines' traffic is.
    const observer = req.headers[OBSERVER_HEADER] !== undefined;
    if (Date.now() < this.unavailableUntil && !observer) {
      req.socket.destroy();
      return;
    }
    const fault = this.repositories.has(repository) && !observer ? this.takeFault(req, repository, kind) : undefined;
    if (fault) return this.inject(fault, req, res, repository, kind, reference);
    if (this.repositories.has(repository) && !observer) this.count(req, res, repository, kind);
    if (!this.repositories.has(repository)) {
      return registryError(res, 404, 'NAME_UNKNOWN',
        `The repository with name '${repository}' does not exist in the registry with id '${this.registryId}'`);
    }
    if (kind === 'manifests' && req.method === 'PUT') return this.putManifest(req, res, repository, reference);
    if (kind === 'blobs' && req.method === 'POST' && !this.blobMounting && url.searchParams.has('mount')) {
      url.searchParams.delete('mount');
      url.searchParams.delete('from');
      req.url = url.pathname + (url.search || '');
    }
    if (kind === 'manifests' && req.method === 'DELETE') {
      const { status } = await this.forward(req, res);
      this.events.push({ method: 'DELETE', repository, reference, status, at: Date.now() });
      if (status === 202) this.forget(repository, reference);
      return;
    }
    const { status, digest } = await this.forward(req, res);
    if (kind === 'manifests' && req.method === 'GET' && status === 200 && !observer) this.pulled(repository, digest ?? reference);
  }

  /** A manifest write the registry accepted: a new image, or a tag moved onto one. */
  private remember(repository: string, reference: string, digest: string, body: Buffer): void {
    let images = this.ledger.get(repository);
    if (!images) this.ledger.set(repository, images = new Map());
    let image = images.get(digest);
    if (!image) {
      const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: string; layers?: Array<{ size?: number }>; manifests?: Array<{ digest: string }> };
      image = {
        digest,
        mediaType: parsed.mediaType ?? (parsed.manifests ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json'),
        sizeBytes: (parsed.layers ?? []).reduce((n, l) => n + (l.size ?? 0), 0),
        children: parsed.manifests?.map(m => m.digest),
        tags: [],
        pushedAt: Date.now(),
      };
      images.set(digest, image);
    }
    if (reference.startsWith('sha256:')) return;
    for (const other of images.values()) other.tags = other.tags.filter(t => t !== reference);
    image.tags.push(reference);
  }

  private pulled(repository: string, reference: string): void {
    const images = this.ledger.get(repository);
    const image = images?.get(reference) ?? [...images?.values() ?? []].find(i => i.tags.includes(reference));
    if (image) image.lastPulledAt = Date.now();
  }

  /** A manifest deleted by digest (its tags go with it, as in ECR and in docker-registry). */
  private forget(repository: string, digest: string): void {
    this.ledger.get(repository)?.delete(digest);
  }

  private async putManifest(req: http.IncomingMessage, res: http.ServerResponse, repository: string, reference: string): Promise<void> {
    const body = await readBody(req);
    const byDigest = reference.startsWith('sha256:');
    const refuse = (status: number, code: string, message: string): void => {
      this.events.push({ method: 'PUT', repository, reference, status, refused: code, at: Date.now() });
      registryError(res, status, code, message);
    };
    if (!byDigest && !REGISTRY_TAG.test(reference)) {
      return refuse(400, 'TAG_INVALID', `The image tag '${reference}' is not valid: 1-128 characters of [A-Za-z0-9_.-], not starting with . or -`);
    }
    // ECR refused BuildKit's legacy cache export, an index of non-manifest blobs (moby/buildkit#699): cache must be
    // exported with image-manifest=true.
    const invalid = invalidManifestReason(body);
    if (invalid) return refuse(400, 'UNSUPPORTED', `Unsupported manifest type: ${invalid}`);
    const immutable = !byDigest && this.repositories.get(repository) === 'IMMUTABLE';
    if (!byDigest) {
      const image = this.ledger.get(repository)?.get(`sha256:${createHash('sha256').update(body).digest('hex')}`);
      if (image && !image.tags.includes(reference) && image.tags.length >= this.maxTagsPerImage) {
        return refuse(403, 'DENIED', `Adding tag '${reference}' to an image in the repository with name '${repository}' in registry with id `
          + `'${this.registryId}' exceeds the maximum allowed number of tags per image which is '${this.maxTagsPerImage}'`);
      }
    }
    const write = async (): Promise<void> => {
      if (immutable && await this.tagExists(repository, reference)) {
        return refuse(400, 'TAG_INVALID',
          `The image tag '${reference}' already exists in the '${repository}' repository and cannot be overwritten because the tag is immutable.`);
      }
      const { status, digest } = await this.forward(req, res, body);
      this.events.push({ method: 'PUT', repository, reference, status, digest, at: Date.now() });
      if (status === 201 && digest) this.remember(repository, reference, digest, body);
    };
    if (!immutable) return write();
    // One write at a time per tag: the check and the write of two racing pushes must not interleave.
    const key = `${repository}:${reference}`;
    const turn = (this.tagLocks.get(key) ?? Promise.resolve()).then(write);
    const settled = turn.then(() => undefined, () => undefined);
    this.tagLocks.set(key, settled);
    try {
      await turn;
    } finally {
      if (this.tagLocks.get(key) === settled) this.tagLocks.delete(key);
    }
  }

  /** The rule, if any, that faults this request (counting it against the rule). */
  private takeFault(req: http.IncomingMessage, repository: string, kind: string): ActiveRule | undefined {
    const write = !(req.method === 'GET' || req.method === 'HEAD');
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    for (const r of this.rules) {
      if (r.repository !== repository || (r.direction === 'write') !== write || (r.kind !== undefined && r.kind !== kind)) continue;
      // A truncated upload needs a body to truncate; a deletion after a read needs a manifest read.
      if (r.fault === 'truncate-upload' && (kind !== 'blobs' || !hasBody)) continue;
      if (r.fault === 'delete-after-read' && (kind !== 'manifests' || req.method !== 'GET')) continue;
      if (r.hit >= (r.times ?? 1)) continue;
      if (r.seen++ < (r.skip ?? 0)) continue;
      r.hit++;
      return r;
    }
    return undefined;
  }

  private async inject(r: ActiveRule, req: http.IncomingMessage, res: http.ServerResponse, repository: string, kind: string,
    reference: string): Promise<void> {
    this.events.push({ method: req.method === 'DELETE' ? 'DELETE' : 'PUT', repository, reference, status: 0, refused: `FAULT ${r.fault} ${req.method} ${kind}`, at: Date.now() });
    switch (r.fault) {
      case 'status-500':
      case 'status-503':
        await readBody(req).catch(() => Buffer.alloc(0));
        return registryError(res, r.fault === 'status-500' ? 500 : 503, 'UNKNOWN', `injected: HTTP ${r.fault.slice(7)}`);
      case 'status-429':
        await readBody(req).catch(() => Buffer.alloc(0));
        res.setHeader('Retry-After', '1');
        return registryError(res, 429, 'TOOMANYREQUESTS', 'Rate exceeded');
      case 'reset':
        // Mid-body: a write loses its connection after part of the upload, a read after part of the answer.
        if (req.method !== 'GET') {
          req.once('data', () => req.socket.destroy());
          req.once('end', () => req.socket.destroy());
          return;
        }
        return this.forwardThenReset(req, res);
      case 'stall':
        await new Promise(resolve => setTimeout(resolve, (r.seconds ?? 10) * 1000));
        this.count(req, res, repository, kind);
        await this.forward(req, res);
        return;
      case 'truncate-upload': {
        const body = await readBody(req);
        this.count(req, res, repository, kind);
        await this.forward(req, res, body.subarray(0, Math.floor(body.length / 2)));
        return;
      }
      case 'unavailable':
        this.unavailableUntil = Date.now() + (r.seconds ?? 10) * 1000;
        req.socket.destroy();
        return;
      case 'delete-after-read': {
        this.count(req, res, repository, kind);
        const { status, digest } = await this.forward(req, res);
        if (status === 200 && digest) await this.deleteManifest(repository, digest);
        return;
      }
    }
  }

  /** Answers a read with its status and headers and part of its body, then drops the connection. */
  private forwardThenReset(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    return new Promise(resolve => {
      const up = http.request({
        host: this.upstream.host, port: this.upstream.port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent: this.agent,
      }, upRes => {
        res.writeHead(upRes.statusCode ?? 502, endToEnd(upRes.headers));
        upRes.once('data', (chunk: Buffer) => {
          res.write(chunk.subarray(0, Math.max(1, Math.floor(chunk.length / 2))));
          res.socket?.destroy();
          upRes.destroy();
          resolve();
        });
        upRes.once('end', () => {
          res.socket?.destroy();
          resolve();
        });
      });
      up.on('error', () => {
        res.socket?.destroy();
        resolve();
      });
      up.end();
    });
  }

  private deleteManifest(repository: string, digest: string): Promise<void> {
    return new Promise(resolve => {
      const r = http.request({
        host: this.upstream.host, port: this.upstream.port, method: 'DELETE', agent: this.agent, path: `/v2/${repository}/manifests/${digest}`,
      }, up => {
        up.resume();
        up.on('end', () => {
          this.events.push({ method: 'DELETE', repository, reference: digest, status: up.statusCode ?? 0, refused: 'FAULT delete-after-read', at: Date.now() });
          if (up.statusCode === 202) this.forget(repository, digest);
          resolve();
        });
      });
      r.on('error', () => resolve());
      r.end();
    });
  }

  /** Counts the bytes of blob and manifest bodies, in both directions, against the repository. */
  private count(req: http.IncomingMessage, res: http.ServerResponse, repository: string, kind: string): void {
    let t = this.traffic.get(repository);
    if (!t) this.traffic.set(repository, t = { blobBytesPulled: 0, blobBytesPushed: 0, manifestBytesPulled: 0, manifestBytesPushed: 0, requests: 0 });
    const totals = t;
    totals.requests++;
    if (kind === 'tags') return;
    const blob = kind === 'blobs';
    req.on('data', (c: Buffer) => {
      if (blob) totals.blobBytesPushed += c.length;
      else totals.manifestBytesPushed += c.length;
    });
    const write = res.write.bind(res);
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer | undefined)?.length ?? 0;
      if (req.method === 'GET' && blob) totals.blobBytesPulled += n;
      else if (req.method === 'GET') totals.manifestBytesPulled += n;
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof res.write;
  }

  private tagExists(repository: string, tag: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const r = http.request({
        host: this.upstream.host, port: this.upstream.port, method: 'HEAD', agent: this.agent,
        path: `/v2/${repository}/manifests/${tag}`, headers: { Accept: ACCEPT_ALL },
      }, up => {
        up.resume();
        up.on('end', () => resolve(up.statusCode === 200));
      });
      r.on('error', reject);
      r.end();
    });
  }

  /** Passes the request through (the Host header too, so that upload locations point at the front). */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, body?: Buffer): Promise<{ status: number; digest?: string }> {
    return new Promise((resolve, reject) => {
      const headers = endToEnd(req.headers);
      if (body !== undefined) headers['content-length'] = String(body.length);
      const up = http.request({
        host: this.upstream.host, port: this.upstream.port, method: req.method, path: req.url, headers, agent: this.agent,
      }, upRes => {
        res.writeHead(upRes.statusCode ?? 502, endToEnd(upRes.headers));
        upRes.pipe(res);
        const digest = upRes.headers['docker-content-digest'];
        upRes.on('end', () => resolve({ status: upRes.statusCode ?? 502, digest: typeof digest === 'string' ? digest : undefined }));
        upRes.on('error', reject);
      });
      up.on('error', e => {
        process.stderr.write(`registry front: ${req.method} ${req.url}: upstream: ${e.message}\n`);
        if (!res.headersSent) registryError(res, 502, 'UNAVAILABLE', `registry front: upstream: ${e.message}`);
        else res.destroy();
        resolve({ status: 502 });
      });
      if (body !== undefined) up.end(body);
      else req.pipe(up);
    });
  }

  private async control(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const path = url.pathname.slice('/__front/'.length);
    if (path === 'repositories' && req.method === 'GET') {
      return json(res, 200, Object.fromEntries(this.repositories));
    }
    if (path.startsWith('repositories/') && req.method === 'PUT') {
      const name = decodeURIComponent(path.slice('repositories/'.length));
      const body = (await readBody(req)).toString('utf8');
      const mutability = (body ? JSON.parse(body).imageTagMutability : undefined) ?? 'MUTABLE';
      if (mutability !== 'MUTABLE' && mutability !== 'IMMUTABLE') return json(res, 400, { error: `bad imageTagMutability '${mutability}'` });
      if (!REPOSITORY_NAME.test(name)) return json(res, 400, { error: `InvalidParameterException: repository name '${name}' does not match ${REPOSITORY_NAME}` });
      if (!this.createRepository(name, mutability)) return json(res, 409, { error: `RepositoryAlreadyExistsException: '${name}'` });
      return json(res, 201, { repositoryName: name, imageTagMutability: mutability });
    }
    if (path === 'faults' && req.method === 'POST') {
      const rule = JSON.parse((await readBody(req)).toString('utf8')) as FaultRule;
      this.rules.push({ ...rule, seen: 0, hit: 0 });
      return json(res, 201, rule);
    }
    if (path === 'faults' && req.method === 'GET') return json(res, 200, this.rules);
    if (path === 'faults' && req.method === 'DELETE') {
      // ?repository=R: that repository's rules only (the other rules may be another run's, armed at the same time).
      const repo = url.searchParams.get('repository');
      const cleared = repo === null ? this.rules : this.rules.filter(r => r.repository === repo);
      this.rules = repo === null ? [] : this.rules.filter(r => r.repository !== repo);
      if (repo === null || cleared.some(r => r.fault === 'unavailable')) this.unavailableUntil = 0;
      return json(res, 200, {});
    }
    if (path === 'traffic' && req.method === 'GET') {
      const repo = url.searchParams.get('repository');
      return json(res, 200, repo ? this.traffic.get(repo) ?? {} : Object.fromEntries(this.traffic));
    }
    if (path === 'images' && req.method === 'GET') {
      const repo = url.searchParams.get('repository') ?? '';
      if (!this.repositories.has(repo)) return json(res, 404, { error: `RepositoryNotFoundException: '${repo}'` });
      return json(res, 200, [...this.ledger.get(repo)?.values() ?? []]);
    }
    if (path === 'events' && req.method === 'GET') {
      const repo = url.searchParams.get('repository');
      return json(res, 200, repo ? this.events.filter(e => e.repository === repo) : this.events);
    }
    return json(res, 404, { error: `unknown control request ${req.method} ${url.pathname}` });
  }
}

/** ECR repository names (CreateRepository's `repositoryName`): 2–256 characters of this pattern (the API model's). */
export const REPOSITORY_NAME = /^(?=.{2,256}$)[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

function endpoint(flag: string, value: string | undefined): Endpoint {
  const m = /^([0-9.]+|localhost):([0-9]+)$/.exec(value ?? '');
  if (!m) throw new Error(`${flag} must be HOST:PORT, got '${value ?? ''}'`);
  return { host: m[1], port: Number(m[2]) };
}

async function main(argv: string[]): Promise<void> {
  const arg = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const maxTags = arg('--max-tags-per-image');
  if (maxTags !== undefined && !/^[1-9][0-9]*$/.test(maxTags)) throw new Error(`--max-tags-per-image must be a positive integer, got '${maxTags}'`);
  const front = new RegistryFront(endpoint('--upstream', arg('--upstream')), undefined, argv.includes('--blob-mounting'),
    maxTags === undefined ? undefined : Number(maxTags));
  const at = await front.listen(endpoint('--listen', arg('--listen')));
  process.stdout.write(`registry front on ${at.host}:${at.port}, upstream ${arg('--upstream')}\n`);
  const stop = (): void => {
    front.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch(e => {
    process.stderr.write(`registry front: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
