/**
 * The multi-platform scenarios, shared by the engine test (platforms.test.ts) and bench:cache: one builder (every platform in
 * one BuildKit build), and native (one build per platform, each on a fresh builder as on its own CodeBuild host, then the merge
 * step): the project, its builds, the ideal per platform, the parser per platform.
 */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BuildScript } from '../../lib/build-script/build-script';
import { platformSlug } from '../../lib/build-script/cache-refs';
import { BUILDAH_STEPS_AWK, BUILDKIT_STEPS_AWK } from '../../lib/build-script/cache-report.sh';
import { StrategyName } from '../../lib/build-script/engine';
import { availableKeys, BuildResult, captureLog, Combo, Engine, freshRepos, Layout, loadEngines, Project, Repos, runBuild } from './harness';

const vars = loadEngines();
export const PLATFORMS = (vars.CIB_MULTI_BASE_PLATFORMS || 'linux/amd64,linux/386').split(',');

/**
 * For a test's title: what linux/386's base variant runs when it is not the i386 busybox (engines.sh busybox_for_386: a kernel
 * without IA32 emulation, or CIB_ENGINES_386=x86-64), so a run on such a machine says so; nothing otherwise.
 */
export function variant386(): string {
  return vars.CIB_MULTI_BASE_386 === 'x86-64' ? ' (386 variant: the x86-64 busybox)' : '';
}
const ARCH = (platform: string): string => platform.split('/')[1];

const run = (id: string, rest: string): string => `RUN echo RAN-STEP-${id.toUpperCase()} | tr A-Z a-z && ${rest}`;

/** The steps a platform runs; ARG TARGETARCH is a line of the Dockerfile, not a step. */
export const STEPS = [
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
export interface PlatformBuild { readonly branch: string; readonly change: Change }

/** App change, a dependency change on the 386 path only, on both, a no-op, a new branch (and its amd64-only deps change). */
export const PLATFORM_BUILDS: readonly PlatformBuild[] = [
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

/**
 * The step a BuildKit title names (`[linux/386 4/7] COPY deps-386.txt ...`, variables expanded or not), with its platform; a
 * title without one (a one-platform build may print none) is `only`'s.
 */
function platformStep(title: string, only?: string): { platform: string; id: string } | undefined {
  const m = /^\[(?:([a-z0-9]+\/[a-z0-9_]+) )?\d+\/\d+\] (.*)$/.exec(title);
  const platform = m?.[1] ?? only;
  if (!m || !platform) return undefined;
  const line = m[2].replace(/deps-[a-z0-9_]+\.txt/, 'deps-${TARGETARCH}.txt');
  const step = STEPS.find(s => s.line === line);
  return step && { platform, id: step.id };
}

/**
 * Per platform: the steps the parser says executed, and the RUN steps whose marker the vertex of that platform printed. `only`:
 * the log is one platform's build.
 */
function perPlatform(buildLog: string, only?: string): Map<string, { executed: string[]; markers: string[] }> {
  const out = new Map(PLATFORMS.map(p => [p, { executed: [] as string[], markers: [] as string[] }]));
  const r = spawnSync('awk', [BUILDKIT_STEPS_AWK], { input: buildLog, encoding: 'utf8' });
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [status, , title] = line.split('\t');
    const s = platformStep(title, only);
    if (s && status === 'executed') out.get(s.platform)?.executed.push(s.id);
  }
  const vertexPlatform = new Map<string, string>();
  for (const m of buildLog.matchAll(/^#(\d+) \[(?:([a-z0-9]+\/[a-z0-9_]+) )?\d+\/\d+\] /gm)) {
    const platform = m[2] ?? only;
    if (platform) vertexPlatform.set(m[1], platform);
  }
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

export interface Index { readonly manifests?: Array<{ digest: string; platform?: { os: string; architecture: string } }> }
export interface ImageManifest { readonly layers: Array<{ digest: string }> }

export async function manifest<T>(repository: string, reference: string): Promise<T> {
  const [registry, ...rest] = repository.split('/');
  const res = await fetch(`http://${registry}/v2/${rest.join('/')}/manifests/${reference}`, { headers: { Accept: ACCEPT } });
  if (!res.ok) throw new Error(`${repository}:${reference}: ${res.status}`);
  return (await res.json()) as T;
}

/** platform → the digest of its image manifest in an index. */
export async function indexPlatforms(repository: string, reference: string): Promise<Map<string, string>> {
  const index = await manifest<Index>(repository, reference);
  return new Map((index.manifests ?? []).map(m => [`${m.platform?.os}/${m.platform?.architecture}`, m.digest]));
}

/** One build of the scenario: the engine's result, the ideal and the executed steps per platform, its artifacts directory. */
export interface PlatformResult {
  readonly r: BuildResult;
  readonly ideal: Map<string, string[]>;
  readonly steps: ReturnType<typeof perPlatform>;
  readonly artifacts: string;
}

/**
 * Drives the scenario's builds on `project`: applies each build's change, computes the ideal per platform (the steps whose key
 * no earlier build the branch can read produced: availableKeys), calls `build`, then records the keys as built.
 */
async function forEachBuild(combo: Combo, project: Project, build: (i: number, b: PlatformBuild, ideal: Map<string, string[]>) => Promise<void>):
Promise<void> {
  const deps = new Map(PLATFORMS.map(p => [p, 'deps-v1']));
  const setDeps = () => { project.deps = PLATFORMS.map(p => `${ARCH(p)}=${deps.get(p)}`).join(' '); };
  setDeps();
  const built = new Map<string, Set<string>>();
  for (const [i, b] of PLATFORM_BUILDS.entries()) {
    if (b.change === 'app' && i > 0) project.app = `app-v${i + 1}`;
    if (typeof b.change === 'object') {
      for (const p of b.change.deps) deps.set(p, `deps-v${i + 1}`);
      setDeps();
    }
    const keys = stepKeys(deps, project.app);
    const available = availableKeys(combo, built, b.branch);
    await build(i, b, new Map(PLATFORMS.map(p => [p, STEPS.map(s => s.id).filter(id => !available.has(keys.get(`${p} ${id}`)!))])));
    const set = built.get(b.branch) ?? new Set<string>();
    for (const k of keys.values()) set.add(k);
    built.set(b.branch, set);
  }
}

/** Runs the scenario's builds, each on a wiped builder unless `keepLocal` (the floor); the caller removes `artifacts`. */
export async function runPlatformsScenario(combo: Combo, engine: Engine, options: { keepLocal?: boolean } = {}):
Promise<{ readonly repos: Repos; readonly results: PlatformResult[] }> {
  const repos = await freshRepos(vars, combo, options.keepLocal ? 'platforms-floor' : 'platforms');
  const project = new Project(vars.CIB_MULTI_BASE_IMAGE, LAYOUT);
  const results: PlatformResult[] = [];
  try {
    await forEachBuild(combo, project, async (i, b, ideal) => {
      const artifacts = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-artifacts-'));
      const r = await runBuild({
        combo, engine, project, repos, branch: b.branch, tag: `b${i + 1}`, available: new Set(), control: vars.CIB_REGISTRY_CONTROL,
        keepLocal: options.keepLocal && i > 0,
        env: { CIB_PLATFORM: PLATFORMS.join(','), CIB_ARTIFACTS_DIR: artifacts },
      });
      results.push({ r, ideal, steps: perPlatform(r.buildLog), artifacts });
      captureLog(`real-registry-d26-platforms-b${i + 1}.log`, r.buildLog);
    });
  } finally {
    project.remove();
  }

  return { repos, results };
}

/** One platform's buildah build: the steps the parser says executed, and the RUN steps whose marker the log holds. */
function buildahSteps(buildLog: string): { executed: string[]; markers: string[] } {
  const r = spawnSync('awk', [BUILDAH_STEPS_AWK], { input: buildLog, encoding: 'utf8' });
  const executed = new Set<string>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [status, , title] = line.split('\t');
    const text = title.replace(/^(\[\d+\/\d+\] )?STEP \d+\/\d+: /, '').replace(/deps-[a-z0-9_]+\.txt/, 'deps-${TARGETARCH}.txt');
    const step = STEPS.find(x => x.line === text);
    if (step && status === 'executed') executed.add(step.id);
  }
  const markers = new Set([...buildLog.matchAll(/^ran-step-(p\d)$/gm)].map(m => m[1]));
  return { executed: STEPS.map(x => x.id).filter(id => executed.has(id)), markers: STEPS.map(x => x.id).filter(id => markers.has(id)) };
}

export { platformSlug };

/** One build of the native scenario: each platform's build (its result, executed steps), then the merge's. */
export interface NativeResult {
  readonly platforms: Map<string, { readonly r: BuildResult; readonly executed: string[]; readonly markers: string[] }>;
  readonly ideal: Map<string, string[]>;
  readonly merge: ReturnType<typeof runMerge>;
  readonly artifacts: string;
}

/**
 * `bash cached-build.sh merge` as the merge project runs it: the app repository, the tag, the platforms; the caller removes
 * `artifacts`.
 */
export function runMerge(strategy: StrategyName, engine: Engine, repos: Repos, tag: string, artifacts: string) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-merge-'));
  const script = path.join(work, 'cached-build.sh');
  fs.writeFileSync(script, new BuildScript({ strategy }).renderScript());
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', [script, 'merge'], {
    encoding: 'utf8', timeout: 120_000,
    env: {
      ...engine.env(), APP_REPOSITORY_URI: repos.app, IMAGE_TAG: tag, CIB_MERGE_PLATFORMS: PLATFORMS.join(' '),
      CIB_WORK_DIR: path.join(work, 'state'), CIB_ARTIFACTS_DIR: artifacts,
    },
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const out = `${r.stdout}${r.stderr}`;
  // Not `exports`: CommonJS's own name, which the transpiled module reads PLATFORMS from.
  const exported: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^export ([A-Z_]+)='(.*)'$/gm)) exported[m[1]] = m[2];
  const reportFile = path.join(artifacts, 'cache-report.json');
  const report = fs.existsSync(reportFile) ? JSON.parse(fs.readFileSync(reportFile, 'utf8')) as Record<string, unknown> : {};
  fs.rmSync(work, { recursive: true, force: true });
  return { status: r.status ?? -1, out, exports: exported, report, seconds };
}

/**
 * The native path: every build of the scenario is one build per platform (`CIB_PLATFORM=<p>`, `CIB_PLATFORM_TAGS=true`, cache
 * refs `<os>-<arch>--<branch>` as CachedMultiPlatformImageBuild names them), each on a wiped builder, then the merge step.
 */
export async function runNativeScenario(combo: Combo, engine: Engine, options: { keepLocal?: boolean } = {}):
Promise<{ readonly repos: Repos; readonly results: NativeResult[] }> {
  const repos = await freshRepos(vars, combo, options.keepLocal ? 'native-floor' : 'native');
  const project = new Project(vars.CIB_MULTI_BASE_IMAGE, LAYOUT);
  const results: NativeResult[] = [];
  try {
    await forEachBuild(combo, project, async (i, b, ideal) => {
      const platforms: NativeResult['platforms'] = new Map();
      for (const p of PLATFORMS) {
        const r = await runBuild({
          combo, engine, project, repos, branch: b.branch, tag: `b${i + 1}`, available: new Set(), control: vars.CIB_REGISTRY_CONTROL,
          keepLocal: options.keepLocal && i > 0,
          env: { CIB_PLATFORM: p, CIB_PLATFORM_TAGS: 'true', CIB_IMAGE_NAME: platformSlug(p) },
        });
        const steps = combo.engine === 'buildah' ? buildahSteps(r.buildLog) : perPlatform(r.buildLog, p).get(p)!;
        captureLog(`native-${combo.recipe}-${combo.engine}-b${i + 1}-${platformSlug(p)}.log`, `${r.log}\n${r.buildLog}`);
        platforms.set(p, { r, executed: steps.executed, markers: steps.markers });
      }
      const artifacts = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-artifacts-'));
      const merge = runMerge(combo.recipe as StrategyName, engine, repos, `b${i + 1}`, artifacts);
      if (merge.status !== 0) throw new Error(`merge of b${i + 1} failed (exit ${merge.status}):\n${merge.out.slice(-4000)}`);
      results.push({ platforms, ideal, merge, artifacts });
    });
  } finally {
    project.remove();
  }
  return { repos, results };
}
