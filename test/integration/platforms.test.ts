/**
 * Multi-platform images, one builder: `CIB_PLATFORM=linux/amd64,linux/386` builds both platforms in one BuildKit build
 * (registry strategy, docker 26 on the containerd image store) FROM the engines' two-platform base (an index of Debian 12's
 * busybox-static for amd64 and for i386: i386 binaries run natively on this x86_64 kernel, so both platforms really run).
 *
 * Every build runs on a wiped builder. The Dockerfile copies a per-architecture dependency file
 * (`deps-${TARGETARCH}.txt`), so a dependency change can touch one platform's path only. What a perfect cache would skip is
 * computed per platform (a step's key chains its platform's base, its line and its input); executed must equal that
 * ideal for each platform on every build, and the marker each RUN step prints must agree, per platform. Each build pushes
 * one index with both platforms under its tag (one PUT per tag on the immutable app repository), exports the index's
 * digest, names the index in imagedefinitions.json and imageDetail.json, counts steps per platform in its report, and
 * exports cache only when a step executed.
 */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BUILDKIT_STEPS_AWK } from '../../lib/build-script/cache-report.sh';
import { BuildResult, Combo, Engine, freshRepos, frontEvents, Layout, loadEngines, Project, runBuild, tagDigest } from './harness';

const vars = loadEngines();
const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/).filter(Boolean));
const required = process.env.REQUIRE_ENGINES === '1';
const PLATFORMS = (vars.CIB_MULTI_BASE_PLATFORMS || 'linux/amd64,linux/386').split(',');
const ARCH = (platform: string): string => platform.split('/')[1];

const run = (id: string, rest: string): string => `RUN echo RAN-STEP-${id.toUpperCase()} | tr A-Z a-z && ${rest}`;

/** The steps a platform runs; ARG TARGETARCH is a line of the Dockerfile, not a step. */
const STEPS = [
  { id: 'p1', line: run('p1', 'echo setup > /setup') },
  { id: 'p2', line: run('p2', 'head -c 131072 /dev/urandom > /tools.bin') },
  { id: 'p3', line: 'COPY deps-${TARGETARCH}.txt /app/deps.txt', input: 'deps' as const },
  { id: 'p4', line: run('p4', 'sleep 1 && head -c 262144 /dev/urandom > /app/deps.bin') },
  { id: 'p5', line: 'COPY app.txt /app/app.txt', input: 'app' as const },
  { id: 'p6', line: run('p6', 'cat /app/app.txt > /app/built') },
];

/** Per-architecture dependency files: the project's `deps` holds `arch=value` pairs separated by spaces. */
const LAYOUT: Layout = {
  name: 'platforms',
  stages: [{ name: '', from: 'BASE' }],
  steps: [{ id: 'arg', stage: '', line: 'ARG TARGETARCH' }, ...STEPS.map(s => ({ id: s.id, stage: '', line: s.line }))],
  metadata: ['CMD ["cat", "/app/built"]'],
  writeInputs: (dir, deps, app) => {
    for (const pair of deps.split(' ')) {
      const [arch, value] = pair.split('=');
      // The project's own first write, before the test sets the pairs.
      if (value === undefined) continue;
      fs.writeFileSync(path.join(dir, `deps-${arch}.txt`), `${value}\n`);
    }
    fs.writeFileSync(path.join(dir, 'app.txt'), `${app}\n`);
  },
};

type Change = 'app' | 'none' | { readonly deps: readonly string[] };
interface PlatformBuild { readonly branch: string; readonly change: Change }

/** App change, a dependency change on the 386 path only, on both, a no-op, a new branch (and its amd64-only deps change). */
const BUILDS: readonly PlatformBuild[] = [
  { branch: 'main', change: 'app' },
  { branch: 'main', change: 'app' },
  { branch: 'main', change: { deps: ['linux/386'] } },
  { branch: 'main', change: { deps: PLATFORMS } },
  { branch: 'main', change: 'none' },
  { branch: 'feature/multi-arch', change: 'app' },
  { branch: 'feature/multi-arch', change: { deps: ['linux/amd64'] } },
  { branch: 'main', change: 'app' },
];

/** A step's cache key per platform: its platform's base, then each step's line and input. */
function stepKeys(deps: Map<string, string>, app: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const platform of PLATFORMS) {
    let key = `base ${platform}`;
    for (const s of STEPS) {
      const input = s.input === 'deps' ? deps.get(platform)! : s.input === 'app' ? app : '';
      key = createHash('sha256').update(`${key}\0${s.line}\0${input}`).digest('hex');
      keys.set(`${platform} ${s.id}`, key);
    }
  }
  return keys;
}

/** The step a BuildKit title names (`[linux/386 4/7] COPY deps-386.txt ...`, variables expanded or not), with its platform. */
function platformStep(title: string): { platform: string; id: string } | undefined {
  const m = /^\[([a-z0-9]+\/[a-z0-9_]+) \d+\/\d+\] (.*)$/.exec(title);
  if (!m) return undefined;
  const line = m[2].replace(/deps-[a-z0-9_]+\.txt/, 'deps-${TARGETARCH}.txt');
  const step = STEPS.find(s => s.line === line);
  return step && { platform: m[1], id: step.id };
}

/** Per platform: the steps the parser says executed, and the RUN steps whose marker the vertex of that platform printed. */
function perPlatform(buildLog: string): Map<string, { executed: string[]; markers: string[] }> {
  const out = new Map(PLATFORMS.map(p => [p, { executed: [] as string[], markers: [] as string[] }]));
  const r = spawnSync('awk', [BUILDKIT_STEPS_AWK], { input: buildLog, encoding: 'utf8' });
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [status, , title] = line.split('\t');
    const s = platformStep(title);
    if (s && status === 'executed') out.get(s.platform)?.executed.push(s.id);
  }
  const vertexPlatform = new Map<string, string>();
  for (const m of buildLog.matchAll(/^#(\d+) \[([a-z0-9]+\/[a-z0-9_]+) \d+\/\d+\] /gm)) vertexPlatform.set(m[1], m[2]);
  for (const m of buildLog.matchAll(/^#(\d+) [0-9.]+ ran-step-(p\d)$/gm)) {
    const platform = vertexPlatform.get(m[1]);
    if (platform) out.get(platform)?.markers.push(m[2]);
  }
  const order = (ids: string[]) => STEPS.map(s => s.id).filter(id => ids.includes(id));
  for (const v of out.values()) {
    v.executed = order(v.executed);
    v.markers = order(v.markers);
  }
  return out;
}

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Index { readonly manifests?: Array<{ digest: string; platform?: { os: string; architecture: string } }> }
interface ImageManifest { readonly layers: Array<{ digest: string }> }

async function manifest<T>(repository: string, reference: string): Promise<T> {
  const [registry, ...rest] = repository.split('/');
  const res = await fetch(`http://${registry}/v2/${rest.join('/')}/manifests/${reference}`, { headers: { Accept: ACCEPT } });
  if (!res.ok) throw new Error(`${repository}:${reference}: ${res.status}`);
  return (await res.json()) as T;
}

/** platform → the digest of its image manifest in an index. */
async function indexPlatforms(repository: string, reference: string): Promise<Map<string, string>> {
  const index = await manifest<Index>(repository, reference);
  return new Map((index.manifests ?? []).map(m => [`${m.platform?.os}/${m.platform?.architecture}`, m.digest]));
}

const combo: Combo = { recipe: 'registry', engine: 'd26' };
const title = `registry on d26, ${PLATFORMS.join(' + ')} in one build`;
const ready = started.has('d26') && !!vars.CIB_MULTI_BASE_IMAGE;
if (ready) {
  let engine: Engine | undefined;
  afterAll(() => engine?.dispose());
  describe(title, () => {
    test('app change, one platform\'s deps change, both, no-op, new branch: executed == ideal per platform on every build', async () => {
      engine = new Engine(combo.engine, vars);
      const repos = await freshRepos(vars, combo, 'platforms');
      const project = new Project(vars.CIB_MULTI_BASE_IMAGE, LAYOUT);
      const deps = new Map(PLATFORMS.map(p => [p, 'deps-v1']));
      const setDeps = () => { project.deps = PLATFORMS.map(p => `${ARCH(p)}=${deps.get(p)}`).join(' '); };
      setDeps();
      const built = new Map<string, Set<string>>();
      const results: Array<{ r: BuildResult; ideal: Map<string, string[]>; steps: ReturnType<typeof perPlatform>; artifacts: string }> = [];
      try {
        for (const [i, b] of BUILDS.entries()) {
          if (b.change === 'app' && i > 0) project.app = `app-v${i + 1}`;
          if (typeof b.change === 'object') {
            for (const p of b.change.deps) deps.set(p, `deps-v${i + 1}`);
            setDeps();
          }
          const keys = stepKeys(deps, project.app);
          const available = new Set([...(built.get(b.branch) ?? []), ...(built.get('main') ?? [])]);
          const ideal = new Map(PLATFORMS.map(p => [p, STEPS.map(s => s.id).filter(id => !available.has(keys.get(`${p} ${id}`)!))]));
          const artifacts = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-artifacts-'));
          const r = await runBuild({
            combo, engine, project, repos, branch: b.branch, tag: `b${i + 1}`, available: new Set(), control: vars.CIB_REGISTRY_CONTROL,
            env: { CIB_PLATFORM: PLATFORMS.join(','), CIB_ARTIFACTS_DIR: artifacts },
          });
          const set = built.get(b.branch) ?? new Set<string>();
          for (const k of keys.values()) set.add(k);
          built.set(b.branch, set);
          results.push({ r, ideal, steps: perPlatform(r.buildLog), artifacts });
          // CIB_CAPTURE_LOGS=DIR keeps the engine's logs (the parser's fixtures come from there).
          if (process.env.CIB_CAPTURE_LOGS) fs.writeFileSync(path.join(process.env.CIB_CAPTURE_LOGS, `real-registry-d26-platforms-b${i + 1}.log`), r.buildLog);
        }
      } finally {
        project.remove();
      }

      // executed == ideal == markers, per platform per build (one table, so a failure shows every build).
      const table = (f: (x: typeof results[number], p: string) => string[]) => results.flatMap((x, i) => PLATFORMS.map(p =>
        `build ${i + 1} (${BUILDS[i].branch}) ${p}: ${f(x, p).join(',') || '-'}`));
      const executed = table((x, p) => x.steps.get(p)!.executed);
      const ideal = table((x, p) => x.ideal.get(p)!);
      const markers = table((x, p) => x.steps.get(p)!.markers.filter(id => id !== 'p3' && id !== 'p5'));
      const idealRuns = table((x, p) => x.ideal.get(p)!.filter(id => id !== 'p3' && id !== 'p5'));
      for (const line of executed) process.stdout.write(`${line}\n`);
      expect(executed).toEqual(ideal);
      expect(markers).toEqual(idealRuns);
      // The scenario means something: the cold build ran all, the 386-only deps change ran 386's deps path only, the no-op nothing.
      expect(results[0].ideal.get('linux/386')).toEqual(STEPS.map(s => s.id));
      expect(results[2].ideal.get('linux/amd64')).toEqual([]);
      expect(results[2].ideal.get('linux/386')).toEqual(['p3', 'p4', 'p5', 'p6']);
      expect(results[4].ideal.get('linux/amd64')).toEqual([]);
      expect(results[5].ideal.get('linux/386')).toEqual(['p5', 'p6']);

      const base = await indexPlatforms(vars.CIB_MULTI_BASE_IMAGE.replace(/:[^:/]+$/, ''), vars.CIB_MULTI_BASE_IMAGE.replace(/^.*:/, ''));
      const events = await frontEvents(vars, repos.app);
      for (const [i, { r, artifacts }] of results.entries()) {
        const tag = `b${i + 1}`;
        // One PUT of the tag (the index), accepted; the platforms' manifests go by digest.
        const puts = events.filter(e => e.method === 'PUT' && e.reference === tag);
        expect({ tag, puts: puts.map(e => `${e.status}${e.refused ? ` ${e.refused}` : ''}`) }).toEqual({ tag, puts: ['201'] });
        // The exported digest is the index's, and the index holds exactly the two platforms, each built on its own base.
        expect({ tag, digest: r.exports.IMAGE_DIGEST }).toEqual({ tag, digest: await tagDigest(repos.app, tag) });
        const platforms = await indexPlatforms(repos.app, r.exports.IMAGE_DIGEST);
        expect({ tag, platforms: [...platforms.keys()].sort() }).toEqual({ tag, platforms: [...PLATFORMS].sort() });
        for (const p of PLATFORMS) {
          const image = await manifest<ImageManifest>(repos.app, platforms.get(p)!);
          const baseImage = await manifest<ImageManifest>(vars.CIB_MULTI_BASE_IMAGE.replace(/:[^:/]+$/, ''), base.get(p)!);
          expect({ tag, p, base: image.layers[0].digest }).toEqual({ tag, p, base: baseImage.layers[0].digest });
        }
        // The artifacts name the index: the tag, and the index's digest.
        const definitions = JSON.parse(fs.readFileSync(path.join(artifacts, 'imagedefinitions.json'), 'utf8')) as Array<{ imageUri: string }>;
        const detail = JSON.parse(fs.readFileSync(path.join(artifacts, 'imageDetail.json'), 'utf8')) as { ImageURI: string };
        expect(definitions[0].imageUri).toBe(`${repos.app}:${tag}`);
        expect(detail.ImageURI).toBe(`${repos.app}@${r.exports.IMAGE_DIGEST}`);
        fs.rmSync(artifacts, { recursive: true, force: true });
        // The report counts steps per platform; the cache is exported only when a step executed.
        const cached = (p: string) => STEPS.length - results[i].ideal.get(p)!.length;
        expect(r.report?.platforms).toEqual(PLATFORMS.map(p => ({ platform: p, stepsTotal: STEPS.length, stepsCached: cached(p) })));
        expect(r.report?.verdict).toContain(`(${PLATFORMS.map(p => `${p} ${cached(p)}/${STEPS.length}`).join(', ')})`);
        const anyExecuted = PLATFORMS.some(p => results[i].ideal.get(p)!.length > 0);
        expect({ tag, written: r.exports.CACHE_REF_WRITTEN !== '' }).toEqual({ tag, written: anyExecuted });
        if (!anyExecuted) expect({ tag, cacheBytesAdded: r.cacheBytesAdded }).toEqual({ tag, cacheBytesAdded: 0 });
      }
      expect(events.filter(e => e.refused)).toEqual([]);
      // A new branch's first build read its own ref and the default branch's.
      expect(results[5].r.exports.CACHE_REFS_READ.split(',')).toEqual([expect.stringMatching(/^feature-multi-arch-[0-9a-f]{8}$/), 'main']);
    });
  });
} else if (required) {
  test(title, () => { throw new Error(`engine d26 or the two-platform base did not start (REQUIRE_ENGINES=1): ${vars.CIB_ENGINES}`); });
} else {
  describe.skip(`${title} (engine d26 or the two-platform base image not started)`, () => { test('skipped', () => undefined); });
}
