/**
 * Real-engine harness shared by the engine tests and the cache benchmark: runs the generated build script
 * (and two baseline recipes) on a builder that is wiped before every build, against a real registry, and
 * reports per build which Dockerfile steps executed, the ideal set, the wall time and the bytes the build
 * added to the cache repository.
 */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BuildScript } from '../../lib/build-script/build-script';
import { BUILDAH_STEPS_AWK, BUILDKIT_STEPS_AWK } from '../../lib/build-script/cache-report.sh';
import { StrategyName } from '../../lib/build-script/engine';
import { FrontEvent } from '../fakes/registry-front';

/** d20x: docker 20.10's daemon (classic image store) with the buildx plugin, where the registry strategy needs a BuildKit container. */
export type EngineName = 'd20' | 'd20x' | 'd26' | 'buildah';
/** Our three strategies plus the two baselines: the naive recipe and the seed's "push when nothing was CACHED" rule. */
export type RecipeName = StrategyName | 'naive' | 'seed';

export interface Combo { readonly recipe: RecipeName; readonly engine: EngineName }

/** Every strategy on every engine where it runs, then the baselines (docker 20.10 only). */
export const STRATEGY_COMBOS: readonly Combo[] = [
  { recipe: 'registry', engine: 'd26' },
  { recipe: 'inline', engine: 'd20' },
  { recipe: 'inline', engine: 'd26' },
  { recipe: 'buildah', engine: 'buildah' },
];
export const BASELINE_COMBOS: readonly Combo[] = [
  { recipe: 'naive', engine: 'd20' },
  { recipe: 'seed', engine: 'd20' },
];

const HERE = __dirname;
const ENV_FILE = path.join(HERE, '.engines.env');

/** The addresses `engines.sh up` wrote. */
export function loadEngines(): Record<string, string> {
  if (!fs.existsSync(ENV_FILE)) throw new Error(`${ENV_FILE} is missing: run test/integration/engines.sh up`);
  const out = spawnSync('bash', ['-c', `set -a; . "${ENV_FILE}"; env -0`], { encoding: 'utf8' });
  const vars: Record<string, string> = {};
  for (const kv of out.stdout.split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0 && kv.startsWith('CIB_')) vars[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return vars;
}

/** One step of the test Dockerfile (steps 2..7; step 1 is FROM). */
interface StepDef { readonly n: number; readonly line: string; readonly input?: 'deps' | 'app' }

/**
 * RUN steps print a marker that only appears when the command really runs (the header shows the
 * upper-case source, the output the lower-case result), an independent check of the log parser.
 */
const STEPS: readonly StepDef[] = [
  { n: 2, line: 'RUN echo RAN-STEP-2 | tr A-Z a-z && echo setup > /setup' },
  { n: 3, line: 'RUN echo RAN-STEP-3 | tr A-Z a-z && mkdir -p /app && head -c 262144 /dev/urandom > /app/tools.bin' },
  { n: 4, line: 'COPY deps.txt /app/deps.txt', input: 'deps' },
  { n: 5, line: 'RUN echo RAN-STEP-5 | tr A-Z a-z && sleep 2 && head -c 1048576 /dev/urandom > /app/deps.bin' },
  { n: 6, line: 'COPY app.txt /app/app.txt', input: 'app' },
  // The app's own build (compile, bundle) runs on every app change: 1 s here.
  { n: 7, line: 'RUN echo RAN-STEP-7 | tr A-Z a-z && sleep 1 && cat /app/app.txt > /app/built' },
];
export const STEP_NUMBERS = STEPS.map(s => s.n);

/** A build context on disk whose deps/app files the scenarios change. */
export class Project {
  public readonly dir: string;
  public deps = 'deps-v1';
  public app = 'app-v1';

  constructor(baseImage: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-project-'));
    fs.writeFileSync(path.join(this.dir, 'Dockerfile'), [`FROM ${baseImage}`, ...STEPS.map(s => s.line), ''].join('\n'));
    this.write();
  }

  public write(): void {
    fs.writeFileSync(path.join(this.dir, 'deps.txt'), this.deps + '\n');
    fs.writeFileSync(path.join(this.dir, 'app.txt'), this.app + '\n');
  }

  /** Cache key of each step prefix: what a perfect cache would have to hold to skip the step. */
  public prefixKeys(): Map<number, string> {
    const keys = new Map<number, string>();
    const h = createHash('sha256');
    for (const s of STEPS) {
      h.update(s.line + '\0' + (s.input === 'deps' ? this.deps : s.input === 'app' ? this.app : '') + '\0');
      keys.set(s.n, h.copy().digest('hex'));
    }
    return keys;
  }

  public remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface BuildResult {
  readonly executed: number[];
  readonly ideal: number[];
  /** RUN steps whose marker appeared in the log. */
  readonly markers: number[];
  readonly seconds: number;
  readonly cacheBytesAdded: number;
  readonly exports: Record<string, string>;
  /** What the script printed. */
  readonly log: string;
  /** The engine's build log (the input of the step parser). */
  readonly buildLog: string;
  /** The script's cache-report.json (our strategies only). */
  readonly report?: CacheReport;
}

/** cache-report.json as the report step writes it. */
export interface CacheReport {
  readonly strategy: string;
  readonly stepsTotal: number;
  readonly stepsCached: number;
  readonly stepsExecuted: number;
  readonly hitRatio: number;
  readonly refsRead: string[];
  readonly refWritten: string;
  readonly cacheBytesPushed: number;
  readonly buildSeconds: number;
  readonly verdict: string;
  readonly steps: Array<{ step: string; status: string; seconds: number | null }>;
}

/** Registry contents reachable from the tags of one repository: manifests and blobs with sizes. */
export interface RepoContents { readonly manifests: Map<string, number>; readonly blobs: Map<string, number> }

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Descriptor { readonly digest: string; readonly size: number }
interface Manifest { readonly manifests?: Descriptor[]; readonly config?: Descriptor; readonly layers?: Descriptor[] }

export async function repoContents(registry: string, repo: string): Promise<RepoContents> {
  const manifests = new Map<string, number>();
  const blobs = new Map<string, number>();
  const tagsRes = await fetch(`http://${registry}/v2/${repo}/tags/list?n=100000`);
  if (tagsRes.status === 404) return { manifests, blobs };
  const tags = ((await tagsRes.json()) as { tags?: string[] | null }).tags ?? [];
  const visit = async (ref: string): Promise<void> => {
    const res = await fetch(`http://${registry}/v2/${repo}/manifests/${ref}`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (!res.ok) return;
    const text = await res.text();
    const digest = res.headers.get('docker-content-digest') ?? ref;
    if (manifests.has(digest)) return;
    manifests.set(digest, Buffer.byteLength(text));
    const m = JSON.parse(text) as Manifest;
    for (const child of m.manifests ?? []) await visit(child.digest);
    for (const b of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) blobs.set(b.digest, b.size);
  };
  for (const t of tags) await visit(t);
  return { manifests, blobs };
}

function bytesAdded(before: RepoContents, after: RepoContents): number {
  let n = 0;
  for (const [d, s] of after.manifests) if (!before.manifests.has(d)) n += s;
  for (const [d, s] of after.blobs) if (!before.blobs.has(d)) n += s;
  return n;
}

/** Runs bash with a script and environment; returns output and status (never throws). */
function bash(script: string, env: NodeJS.ProcessEnv, cwd: string, timeoutMs = 600_000): { out: string; status: number } {
  const r = spawnSync('bash', ['-c', script], { env, cwd, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return { out: (r.stdout ?? '') + (r.stderr ?? ''), status: r.status ?? 1 };
}

/** One engine with its client environment, able to wipe itself. */
export class Engine {
  private buildahRoot?: string;
  private readonly dockerConfig: string;

  constructor(public readonly name: EngineName, private readonly vars: Record<string, string>) {
    this.dockerConfig = fs.mkdtempSync(path.join(os.tmpdir(), `cib-dockercfg-${name}-`));
    if (name === 'd26' || name === 'd20x') {
      fs.mkdirSync(path.join(this.dockerConfig, 'cli-plugins'));
      fs.symlinkSync(path.join(vars.CIB_D26_DOCKER_CONFIG, 'cli-plugins', 'docker-buildx'),
        path.join(this.dockerConfig, 'cli-plugins', 'docker-buildx'));
    }
  }

  public env(): NodeJS.ProcessEnv {
    const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: os.tmpdir(), LANG: 'C.UTF-8' };
    switch (this.name) {
      case 'd20':
      case 'd20x':
        return { ...base, PATH: `${this.vars.CIB_D20_BIN}:${base.PATH}`, DOCKER_HOST: this.vars.CIB_D20_HOST, DOCKER_CONFIG: this.dockerConfig, DOCKER_BUILDKIT: '1' };
      case 'd26':
        return { ...base, PATH: `${this.vars.CIB_D26_BIN}:${base.PATH}`, DOCKER_HOST: this.vars.CIB_D26_HOST, DOCKER_CONFIG: this.dockerConfig };
      case 'buildah': {
        if (!this.buildahRoot) this.newBuildahStorage();
        return { ...base, PATH: `${this.vars.CIB_BUILDAH_BIN}:${base.PATH}`, CONTAINERS_STORAGE_CONF: path.join(this.buildahRoot!, 'storage.conf') };
      }
    }
  }

  /** Removes every local image and all build cache: the next build starts like a fresh CI runner. */
  public wipe(): void {
    if (this.name === 'buildah') {
      this.dropBuildahStorage();
      this.newBuildahStorage();
      return;
    }
    const r = bash('docker system prune -af >/dev/null && docker builder prune -af >/dev/null && test -z "$(docker images -q)"', this.env(), os.tmpdir());
    if (r.status !== 0) throw new Error(`wiping ${this.name} failed:\n${r.out}`);
  }

  public dispose(): void {
    if (this.name === 'buildah') this.dropBuildahStorage();
    fs.rmSync(this.dockerConfig, { recursive: true, force: true });
  }

  private newBuildahStorage(): void {
    this.buildahRoot = fs.mkdtempSync(path.join('/var/tmp', 'cib-buildah-'));
    const conf = fs.readFileSync(this.vars.CIB_BUILDAH_STORAGE_TEMPLATE, 'utf8').replace(/@ROOT@/g, this.buildahRoot);
    fs.writeFileSync(path.join(this.buildahRoot, 'storage.conf'), conf);
  }

  private dropBuildahStorage(): void {
    if (!this.buildahRoot) return;
    const root = this.buildahRoot;
    bash('buildah rm -a >/dev/null 2>&1; buildah rmi -af >/dev/null 2>&1; true', this.env(), os.tmpdir());
    bash(`grep -F " ${root}" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l; true`, process.env, os.tmpdir());
    fs.rmSync(root, { recursive: true, force: true });
    this.buildahRoot = undefined;
  }
}

/** The repositories one scenario run uses: fresh names, so no run sees another's cache. */
export interface Repos { readonly registry: string; readonly app: string; readonly cache: string }

/** Creates a repository on the ECR-behaving front, like ECR's CreateRepository (pushing to a missing one is refused). */
export async function createRepository(vars: Record<string, string>, name: string, mutability: 'MUTABLE' | 'IMMUTABLE'): Promise<void> {
  const res = await fetch(`${vars.CIB_REGISTRY_CONTROL}/repositories/${encodeURIComponent(name)}`, {
    method: 'PUT', body: JSON.stringify({ imageTagMutability: mutability }),
  });
  if (res.status !== 201) throw new Error(`creating repository ${name} on the registry front: ${res.status} ${await res.text()}`);
}

/** Fresh app (immutable, like the construct's) and cache (mutable) repositories on the front. */
export async function freshRepos(vars: Record<string, string>, combo: Combo, scenario: string): Promise<Repos> {
  const registry = vars.CIB_REGISTRY;
  const id = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const prefix = `cib-${id}/${combo.recipe}-${combo.engine}-${scenario.toLowerCase()}`;
  await createRepository(vars, `${prefix}-app`, 'IMMUTABLE');
  await createRepository(vars, `${prefix}-cache`, 'MUTABLE');
  return { registry, app: `${registry}/${prefix}-app`, cache: `${registry}/${prefix}-cache` };
}

/** The manifest writes (and refusals) the front saw for one repository (`registry/name`). */
export async function frontEvents(vars: Record<string, string>, repository: string): Promise<FrontEvent[]> {
  const name = repository.slice(vars.CIB_REGISTRY.length + 1);
  const res = await fetch(`${vars.CIB_REGISTRY_CONTROL}/events?repository=${encodeURIComponent(name)}`);
  return (await res.json()) as FrontEvent[];
}

/** The digest a tag points to, asked of the registry (HEAD, as the script does). */
export async function tagDigest(repository: string, tag: string): Promise<string | undefined> {
  const [registry, ...rest] = repository.split('/');
  const res = await fetch(`http://${registry}/v2/${rest.join('/')}/manifests/${tag}`, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT } });
  return res.ok ? res.headers.get('docker-content-digest') ?? undefined : undefined;
}

/** Renders our build script for a strategy (the same text the buildspec carries). */
export function renderScript(strategy: StrategyName): string {
  return new BuildScript({ strategy }).renderScript();
}

export function parseSteps(log: string, format: 'buildkit' | 'buildah'): Array<{ n: number; status: string }> {
  const tmp = path.join(os.tmpdir(), `cib-log-${process.pid}-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(tmp, log);
  try {
    const r = spawnSync('awk', [format === 'buildah' ? BUILDAH_STEPS_AWK : BUILDKIT_STEPS_AWK, tmp], { encoding: 'utf8' });
    return r.stdout.split('\n').filter(Boolean).map(line => {
      const [status, , title] = line.split('\t');
      const m = /(?:\[|STEP )(\d+)\//.exec(title);
      return { n: m ? Number(m[1]) : -1, status };
    });
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Shell for the two baselines, run as the engine's client would (docker 20.10 CLI). */
function baselineScript(recipe: 'naive' | 'seed', repos: Repos, tag: string): string {
  const build = (from: string) => `DOCKER_BUILDKIT=1 docker build --progress=plain --network host --build-arg BUILDKIT_INLINE_CACHE=1 --cache-from ${from} -t ${repos.app}:${tag} . 2>&1 | tee build.log`;
  const pushApp = `docker push ${repos.app}:${tag} >/dev/null`;
  const pushCache = `docker tag ${repos.app}:${tag} ${repos.cache}:latest && docker push ${repos.cache}:latest >/dev/null`;
  if (recipe === 'naive') {
    // The classic recipe: cache from :latest, push the image as :latest (kept in the cache repo here, to measure it).
    return `set -euo pipefail; ${build(`${repos.cache}:latest`)}; ${pushApp}; ${pushCache}`;
  }
  // The seed's rule: push a separate cache tag only when no step printed CACHED.
  return `set -euo pipefail; ${build(`${repos.cache}:latest`)}; ${pushApp}; if ! grep -q ' CACHED$' build.log; then ${pushCache}; fi`;
}

export interface BuildRequest {
  readonly combo: Combo;
  readonly engine: Engine;
  readonly project: Project;
  readonly repos: Repos;
  readonly branch: string;
  readonly tag: string;
  /** Prefix keys a perfect cache holds for the refs this build reads. */
  readonly available: ReadonlySet<string>;
  /** Keep the builder's local state (the floor measurement). */
  readonly keepLocal?: boolean;
  /** More environment for the script (configuration variables). */
  readonly env?: Record<string, string>;
}

export async function runBuild(req: BuildRequest): Promise<BuildResult> {
  const { combo, engine, project, repos } = req;
  project.write();
  if (!req.keepLocal) engine.wipe();
  const before = await repoContents(repos.registry, repos.cache.slice(repos.registry.length + 1));
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-work-'));
  let script: string;
  if (combo.recipe === 'naive' || combo.recipe === 'seed') {
    script = baselineScript(combo.recipe, repos, req.tag);
  } else {
    const file = path.join(workDir, 'cached-build.sh');
    fs.writeFileSync(file, renderScript(combo.recipe));
    script = `bash ${file}`;
  }
  const env: NodeJS.ProcessEnv = {
    ...engine.env(), APP_REPOSITORY_URI: repos.app, CACHE_REPOSITORY_URI: repos.cache,
    IMAGE_TAG: req.tag, CACHE_BRANCH: req.branch, CIB_NETWORK: 'host', CIB_WORK_DIR: workDir, ...req.env,
  };
  const t0 = process.hrtime.bigint();
  const r = bash(script, env, project.dir);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const buildLog = path.join(combo.recipe === 'naive' || combo.recipe === 'seed' ? project.dir : workDir, 'build.log');
  const log = fs.existsSync(buildLog) ? fs.readFileSync(buildLog, 'utf8') : '';
  const reportFile = path.join(workDir, 'cache-report.json');
  const report = fs.existsSync(reportFile) ? JSON.parse(fs.readFileSync(reportFile, 'utf8')) as CacheReport : undefined;
  fs.rmSync(workDir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`${combo.recipe}@${combo.engine} build ${req.tag} failed (exit ${r.status}):\n${r.out.slice(-6000)}`);
  const after = await repoContents(repos.registry, repos.cache.slice(repos.registry.length + 1));
  const steps = parseSteps(log, combo.engine === 'buildah' ? 'buildah' : 'buildkit');
  const keys = project.prefixKeys();
  const exported: Record<string, string> = {};
  for (const m of r.out.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) exported[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
  return {
    executed: steps.filter(s => s.status === 'executed').map(s => s.n),
    ideal: STEP_NUMBERS.filter(n => !req.available.has(keys.get(n)!)),
    markers: [...log.matchAll(/ran-step-(\d+)/g)].map(m => Number(m[1])).filter((n, i, a) => a.indexOf(n) === i),
    seconds,
    cacheBytesAdded: bytesAdded(before, after),
    exports: exported,
    log: r.out,
    buildLog: log,
    report,
  };
}

/** A scenario: the changes before each build, on which branch. */
export interface ScenarioBuild { readonly branch: string; readonly change?: 'app' | 'deps' | 'none' }
export interface Scenario { readonly name: string; readonly title: string; readonly builds: readonly ScenarioBuild[] }

export const SCENARIOS: readonly Scenario[] = [
  { name: 'S1', title: 'app file changes each build', builds: Array.from({ length: 6 }, () => ({ branch: 'main', change: 'app' as const })) },
  {
    name: 'S2', title: 'deps change at builds 3 and 6',
    builds: Array.from({ length: 8 }, (_, i) => ({ branch: 'main', change: (i === 2 || i === 5 ? 'deps' : 'app') as 'deps' | 'app' })),
  },
  { name: 'S3', title: 'nothing changes', builds: Array.from({ length: 4 }, () => ({ branch: 'main', change: 'none' as const })) },
  {
    name: 'S4', title: "a new branch's first build reads the default branch's cache",
    builds: [{ branch: 'main', change: 'app' }, { branch: 'feature/new-thing', change: 'app' }, { branch: 'feature/new-thing', change: 'app' }],
  },
];

export interface ScenarioRun {
  readonly combo: Combo;
  readonly scenario: Scenario;
  readonly repos: Repos;
  readonly builds: BuildResult[];
  /** The last build run again, same commit and tag, on a wiped builder ("Release change"), when asked for. */
  rerun?: BuildResult;
  /** Wall seconds of one more app-change build on a builder that kept its local cache. */
  floorSeconds?: number;
}

/**
 * Runs a scenario: every build on a wiped builder. The ideal for each build is computed from what
 * changed: a step may be skipped only if a previous build on the branch or the default branch built
 * exactly the same prefix of steps.
 */
export async function runScenario(combo: Combo, scenario: Scenario, engine: Engine, vars: Record<string, string>,
  options: { floor?: boolean; rerun?: boolean; env?: Record<string, string>; onBuild?: (i: number, r: BuildResult) => void } = {},
): Promise<ScenarioRun> {
  const project = new Project(vars.CIB_BASE_IMAGE);
  const repos = await freshRepos(vars, combo, scenario.name);
  const built = new Map<string, Set<string>>();
  const results: BuildResult[] = [];
  let counter = 0;
  const change = (what: string | undefined) => {
    counter++;
    if (what === 'app' && counter > 1) project.app = `app-v${counter}`;
    if (what === 'deps') project.deps = `deps-v${counter}`;
  };
  const availableFor = (branch: string) => new Set([...(built.get(branch) ?? []), ...(built.get('main') ?? [])]);
  const remember = (branch: string) => {
    const set = built.get(branch) ?? new Set<string>();
    for (const k of project.prefixKeys().values()) set.add(k);
    built.set(branch, set);
  };
  try {
    for (const [i, b] of scenario.builds.entries()) {
      change(b.change);
      const r = await runBuild({
        combo, engine, project, repos, branch: b.branch, tag: `b${i + 1}`, available: availableFor(b.branch), env: options.env,
      });
      remember(b.branch);
      results.push(r);
      options.onBuild?.(i, r);
    }
    const run: ScenarioRun = { combo, scenario, repos, builds: results };
    if (options.rerun) {
      const last = scenario.builds.length - 1;
      run.rerun = await runBuild({
        combo, engine, project, repos, branch: scenario.builds[last].branch, tag: `b${last + 1}`, available: new Set(project.prefixKeys().values()),
        env: options.env,
      });
    }
    if (options.floor) {
      change('app');
      const r = await runBuild({ combo, engine, project, repos, branch: 'main', tag: 'floor', available: availableFor('main'), keepLocal: true });
      run.floorSeconds = r.seconds;
    }
    return run;
  } finally {
    project.remove();
  }
}
