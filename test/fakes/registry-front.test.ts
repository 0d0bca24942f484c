/**
 * The ECR-behaving registry front refuses what ECR refuses (test/aws-contract.md), in front of a stand-in upstream
 * registry that, like docker-registry, accepts everything.
 */
import { createHash } from 'crypto';
import * as http from 'http';
import { Endpoint, RegistryFront } from './registry-front';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** A lenient upstream: stores manifests by repository and reference, answers everything else 202, records Host headers. */
interface Upstream { server: http.Server; hosts: string[]; urls: string[]; bodies: number[]; deleted: string[]; listen(): Promise<Endpoint> }

function lenientUpstream(): Upstream {
  const manifests = new Map<string, { body: Buffer; digest: string }>();
  const hosts: string[] = [];
  const urls: string[] = [];
  const bodies: number[] = [];
  const deleted: string[] = [];
  const server = http.createServer((req, res) => {
    hosts.push(req.headers.host ?? '');
    urls.push(req.url ?? '');
    const chunks: Buffer[] = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'PATCH') bodies.push(Buffer.concat(chunks).length);
      const m = /^\/v2\/(.+)\/manifests\/(.+)$/.exec(req.url ?? '');
      if (m && req.method === 'DELETE') {
        deleted.push(m[2]);
        for (const k of [...manifests.keys()]) if (manifests.get(k)!.digest === m[2]) manifests.delete(k);
        res.writeHead(202);
        res.end();
        return;
      }
      if (m && req.method === 'PUT') {
        const body = Buffer.concat(chunks);
        const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
        manifests.set(`${m[1]}@${m[2]}`, { body, digest });
        manifests.set(`${m[1]}@${digest}`, { body, digest });
        res.writeHead(201, { 'Docker-Content-Digest': digest, Location: `http://${req.headers.host}/v2/${m[1]}/manifests/${digest}` });
        res.end();
        return;
      }
      if (m && (req.method === 'HEAD' || req.method === 'GET')) {
        const found = manifests.get(`${m[1]}@${m[2]}`);
        if (!found) {
          res.writeHead(404);
          res.end();
          return;
        }
        res.writeHead(200, { 'Docker-Content-Digest': found.digest, 'Content-Length': found.body.length });
        res.end(req.method === 'GET' ? found.body : undefined);
        return;
      }
      if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) {
        res.writeHead(200, { 'Content-Length': 4096 });
        res.end(Buffer.alloc(4096));
        return;
      }
      res.writeHead(202, { Location: `http://${req.headers.host}/v2/upload/1` });
      res.end();
    });
  });
  return {
    server, hosts, urls, bodies, deleted,
    listen: () => new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve({ host: '127.0.0.1', port: (server.address() as { port: number }).port }))),
  };
}

interface Answer { status: number; body: string; headers: http.IncomingHttpHeaders }

let upstream: ReturnType<typeof lenientUpstream>;
let front: RegistryFront;
let at: Endpoint;

function request(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: at.host, port: at.port, method, path, headers }, res => {
      const chunks: Buffer[] = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const manifest = (n: number): string => JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: `sha256:${'c'.repeat(63)}${n}`, size: 1 } });
const create = (name: string, mutability: string) => request('PUT', `/__front/repositories/${name}`, JSON.stringify({ imageTagMutability: mutability }));
const errorCode = (a: Answer): string => JSON.parse(a.body).errors[0].code;
let up: { host: string; port: number };

beforeEach(async () => {
  upstream = lenientUpstream();
  up = await upstream.listen();
  front = new RegistryFront(up);
  at = await front.listen({ host: '127.0.0.1', port: 0 });
  expect((await create('team/app', 'IMMUTABLE')).status).toBe(201);
  expect((await create('team/app-cache', 'MUTABLE')).status).toBe(201);
});

afterEach(async () => {
  await front.close();
  upstream.server.closeAllConnections();
  await new Promise(resolve => upstream.server.close(resolve));
});

describe('repositories must exist, as in ECR', () => {
  test.each([
    ['PUT', '/v2/nope/manifests/t1'], ['HEAD', '/v2/nope/manifests/t1'], ['POST', '/v2/nope/blobs/uploads/'], ['GET', '/v2/nope/tags/list'],
  ])('%s %s is NAME_UNKNOWN (404)', async (method, path) => {
    const r = await request(method, path, method === 'PUT' ? manifest(1) : undefined);
    expect(r.status).toBe(404);
    if (method !== 'HEAD') {
      expect(JSON.parse(r.body).errors[0]).toMatchObject({
        code: 'NAME_UNKNOWN', message: "The repository with name 'nope' does not exist in the registry with id '123456789012'",
      });
    }
  });

  test('repository names follow ECR\'s pattern; a name is created once', async () => {
    expect((await create('Team/App', 'MUTABLE')).status).toBe(400);
    expect((await create('a', 'MUTABLE')).status).toBe(400);
    expect((await create('team/app', 'MUTABLE')).status).toBe(409);
    expect((await create('team/other', 'SOMETIMES')).status).toBe(400);
  });
});

describe('tag immutability, as in ECR', () => {
  test('an immutable tag is PUT once; the same manifest again is TAG_INVALID (400), and recorded', async () => {
    expect((await request('PUT', '/v2/team/app/manifests/c1', manifest(1))).status).toBe(201);
    const again = await request('PUT', '/v2/team/app/manifests/c1', manifest(1));
    expect(again.status).toBe(400);
    expect(JSON.parse(again.body).errors[0]).toMatchObject({
      code: 'TAG_INVALID',
      message: "The image tag 'c1' already exists in the 'team/app' repository and cannot be overwritten because the tag is immutable.",
    });
    const events = JSON.parse((await request('GET', '/__front/events?repository=team/app')).body);
    expect(events.map((e: { reference: string; status: number; refused?: string }) => [e.reference, e.status, e.refused])).toEqual([
      ['c1', 201, undefined], ['c1', 400, 'TAG_INVALID'],
    ]);
    expect(events[0].digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  test('a mutable repository takes a tag again; digests can always be PUT', async () => {
    for (let i = 0; i < 2; i++) expect((await request('PUT', '/v2/team/app-cache/manifests/main', manifest(i))).status).toBe(201);
    const digest = `sha256:${createHash('sha256').update(manifest(7)).digest('hex')}`;
    for (let i = 0; i < 2; i++) expect((await request('PUT', `/v2/team/app/manifests/${digest}`, manifest(7))).status).toBe(201);
  });

  test('of two racing PUTs to one immutable tag exactly one wins', async () => {
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => request('PUT', '/v2/team/app/manifests/race', manifest(i))));
    expect(answers.map(a => a.status).sort()).toEqual([201, 400, 400, 400, 400]);
  });

  test('a tag more on an image with the maximum number of tags is DENIED (403); a tag it has, or a PUT by digest, is not', async () => {
    await front.close();
    front = new RegistryFront(up, undefined, false, 2);
    at = await front.listen({ host: '127.0.0.1', port: 0 });
    {
      front.createRepository('team/few', 'MUTABLE');
      const put = (ref: string, body: string) => request('PUT', `/v2/team/few/manifests/${ref}`, body);
      expect((await put('a', manifest(3))).status).toBe(201);
      expect((await put('b', manifest(3))).status).toBe(201);
      const third = await put('c', manifest(3));
      expect([third.status, errorCode(third)]).toEqual([403, 'DENIED']);
      expect(JSON.parse(third.body).errors[0].message).toBe("Adding tag 'c' to an image in the repository with name 'team/few' in registry with id "
        + "'123456789012' exceeds the maximum allowed number of tags per image which is '2'");
      expect((await put('b', manifest(3))).status).toBe(201);
      const digest = `sha256:${createHash('sha256').update(manifest(3)).digest('hex')}`;
      expect((await put(digest, manifest(3))).status).toBe(201);
      expect((await put('c', manifest(4))).status).toBe(201);
    }
  });

  test.each([['x'.repeat(129)], ['.hidden'], ['-dash']])('the tag %s is TAG_INVALID', async tag => {
    const r = await request('PUT', `/v2/team/app-cache/manifests/${tag}`, manifest(1));
    expect([r.status, errorCode(r)]).toEqual([400, 'TAG_INVALID']);
  });
});

describe('manifests ECR refuses', () => {
  test("BuildKit's legacy cache export (an index of non-manifest blobs) is UNSUPPORTED; an index of manifests is fine", async () => {
    const legacy = JSON.stringify({
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [{ mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: `sha256:${'a'.repeat(64)}`, size: 1 }],
    });
    const r = await request('PUT', '/v2/team/app-cache/manifests/main', legacy);
    expect([r.status, errorCode(r)]).toEqual([400, 'UNSUPPORTED']);
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: `sha256:${'b'.repeat(64)}`, size: 1 }] });
    expect((await request('PUT', '/v2/team/app-cache/manifests/multi', index)).status).toBe(201);
  });
});

describe('everything else passes through', () => {
  test('the Host header reaches the upstream, so its upload locations point at the front', async () => {
    const r = await request('POST', '/v2/team/app/blobs/uploads/', undefined, { Host: 'registry.test:5000' });
    expect(r.status).toBe(202);
    expect(r.headers.location).toBe('http://registry.test:5000/v2/upload/1');
    expect(upstream.hosts).toContain('registry.test:5000');
  });
});

describe('traffic', () => {
  test('blob and manifest bytes are counted per repository, both ways', async () => {
    await request('PATCH', '/v2/team/app-cache/blobs/uploads/1', Buffer.alloc(1000));
    await request('GET', `/v2/team/app-cache/blobs/sha256:${'d'.repeat(64)}`);
    await request('PUT', '/v2/team/app-cache/manifests/main', manifest(1));
    await request('GET', '/v2/team/app-cache/manifests/main');
    const t = JSON.parse((await request('GET', '/__front/traffic?repository=team/app-cache')).body);
    expect(t).toEqual({
      blobBytesPushed: 1000, blobBytesPulled: 4096, manifestBytesPushed: manifest(1).length, manifestBytesPulled: manifest(1).length, requests: 4,
    });
  });
});

describe('blob mounting', () => {
  test("is off, as ECR's registry setting is by default: a mount request becomes a plain upload", async () => {
    await request('POST', `/v2/team/app/blobs/uploads/?mount=sha256:${'e'.repeat(64)}&from=team/app-cache`);
    expect(upstream.urls.filter(u => u.includes('/blobs/uploads/'))).toEqual(['/v2/team/app/blobs/uploads/']);
  });
});

describe('fault injection (the fault suite)', () => {
  const fault = (rule: Record<string, unknown>) => request('POST', '/__front/faults', JSON.stringify(rule));
  const settles = (p: Promise<Answer>) => p.then(a => `status ${a.status}`, (e: Error) => `error ${(e as NodeJS.ErrnoException).code ?? e.message}`);

  test('HTTP errors hit the matching requests only, as many times as asked, after the ones to skip', async () => {
    await fault({ fault: 'status-503', repository: 'team/app-cache', direction: 'write', skip: 1, times: 2 });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await request('PUT', `/v2/team/app-cache/manifests/t${i}`, manifest(i))).status);
    expect(answers).toEqual([201, 503, 503, 201]);
    expect((await request('GET', '/v2/team/app-cache/manifests/t0')).status).toBe(200);
  });

  test('429 carries Retry-After, like a throttled registry', async () => {
    await fault({ fault: 'status-429', repository: 'team/app', direction: 'read' });
    const r = await request('GET', '/v2/team/app/manifests/x');
    expect([r.status, r.headers['retry-after'], errorCode(r)]).toEqual([429, '1', 'TOOMANYREQUESTS']);
  });

  test('a reset drops the connection mid-answer; a stall delays it', async () => {
    await fault({ fault: 'reset', repository: 'team/app-cache', direction: 'read', kind: 'blobs' });
    expect(await settles(request('GET', `/v2/team/app-cache/blobs/sha256:${'d'.repeat(64)}`))).toMatch(/^error /);
    await fault({ fault: 'stall', repository: 'team/app-cache', direction: 'read', seconds: 0.3 });
    const t0 = Date.now();
    expect((await request('GET', `/v2/team/app-cache/blobs/sha256:${'d'.repeat(64)}`)).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
  });

  test('a truncated upload reaches the registry half-written', async () => {
    await fault({ fault: 'truncate-upload', repository: 'team/app', direction: 'write' });
    await request('PATCH', '/v2/team/app/blobs/uploads/1', Buffer.alloc(1000));
    await request('PATCH', '/v2/team/app/blobs/uploads/1', Buffer.alloc(1000));
    expect(upstream.bodies).toEqual([500, 1000]);
  });

  test('an unavailable registry drops every connection for a while', async () => {
    await fault({ fault: 'unavailable', repository: 'team/app', direction: 'read', seconds: 0.3 });
    expect(await settles(request('GET', '/v2/team/app/manifests/a'))).toMatch(/^error /);
    expect(await settles(request('GET', '/v2/team/app-cache/manifests/b'))).toMatch(/^error /);
    await new Promise(resolve => setTimeout(resolve, 350));
    expect(await settles(request('GET', '/v2/team/app-cache/manifests/b'))).toBe('status 404');
  });

  test('a manifest can disappear right after a build read it', async () => {
    expect((await request('PUT', '/v2/team/app-cache/manifests/main', manifest(1))).status).toBe(201);
    await fault({ fault: 'delete-after-read', repository: 'team/app-cache', direction: 'read' });
    expect((await request('GET', '/v2/team/app-cache/manifests/main')).status).toBe(200);
    for (let i = 0; i < 50 && upstream.deleted.length === 0; i++) await new Promise(resolve => setTimeout(resolve, 10));
    expect(upstream.deleted).toHaveLength(1);
    await request('DELETE', '/__front/faults');
    expect(JSON.parse((await request('GET', '/__front/faults')).body)).toEqual([]);
  });

  test("DELETE ?repository=R clears R's rules only: a fault armed on another repository at the same time stays", async () => {
    await fault({ fault: 'status-500', repository: 'team/app', direction: 'read', times: 5 });
    await fault({ fault: 'status-503', repository: 'team/app-cache', direction: 'read', times: 5 });
    await request('DELETE', `/__front/faults?repository=${encodeURIComponent('team/app')}`);
    expect(JSON.parse((await request('GET', '/__front/faults')).body).map((r: { repository: string }) => r.repository)).toEqual(['team/app-cache']);
    expect((await request('GET', '/v2/team/app/manifests/a')).status).toBe(404);
    expect((await request('GET', '/v2/team/app-cache/manifests/a')).status).toBe(503);
  });

  test("DELETE ?repository=R ends an outage R's rule started", async () => {
    await fault({ fault: 'unavailable', repository: 'team/app', direction: 'read', seconds: 30 });
    expect(await settles(request('GET', '/v2/team/app/manifests/a'))).toMatch(/^error /);
    await request('DELETE', '/__front/faults?repository=team%2Fapp-cache');
    expect(await settles(request('GET', '/v2/team/app-cache/manifests/a'))).toMatch(/^error /);
    await request('DELETE', '/__front/faults?repository=team%2Fapp');
    expect(await settles(request('GET', '/v2/team/app-cache/manifests/a'))).toBe('status 404');
  });
});

describe("the repository as ECR's DescribeImages sees it (the cleanup's view)", () => {
  const images = async (repo: string) => JSON.parse((await request('GET', `/__front/images?repository=${repo}`)).body);
  const withLayers = (n: number, sizes: number[]): string => JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: `sha256:${'c'.repeat(63)}${n}`, size: 1 },
    layers: sizes.map((size, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'e'.repeat(63)}${i}`, size })),
  });

  test('pushes, tag moves, pulls and deletions are kept; observers and refusals are not', async () => {
    const t0 = Date.now();
    const a = (await request('PUT', '/v2/team/app-cache/manifests/main', withLayers(1, [10, 20]))).headers['docker-content-digest'];
    const b = (await request('PUT', '/v2/team/app-cache/manifests/main', withLayers(2, [5]))).headers['docker-content-digest'];
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: a, size: 1 }] });
    await request('PUT', '/v2/team/app-cache/manifests/multi', index);
    await request('PUT', '/v2/team/app-cache/manifests/bad--tag!', withLayers(3, [1]));
    expect(await images('team/app-cache')).toEqual([
      { digest: a, mediaType: OCI_MANIFEST, sizeBytes: 30, tags: [], pushedAt: expect.any(Number) },
      { digest: b, mediaType: OCI_MANIFEST, sizeBytes: 5, tags: ['main'], pushedAt: expect.any(Number) },
      expect.objectContaining({ mediaType: OCI_INDEX, sizeBytes: 0, children: [a], tags: ['multi'] }),
    ]);
    expect((await images('team/app-cache'))[0].pushedAt).toBeGreaterThanOrEqual(t0);

    await request('GET', '/v2/team/app-cache/manifests/main', undefined, { 'x-cib-observer': '1' });
    expect((await images('team/app-cache'))[1].lastPulledAt).toBeUndefined();
    await request('GET', '/v2/team/app-cache/manifests/main');
    expect((await images('team/app-cache'))[1].lastPulledAt).toBeGreaterThanOrEqual(t0);

    expect((await request('DELETE', `/v2/team/app-cache/manifests/${b}`)).status).toBe(202);
    expect((await images('team/app-cache')).map((i: { digest: string }) => i.digest)).not.toContain(b);
    expect((await request('GET', '/__front/images?repository=nope')).status).toBe(404);
  });
});
