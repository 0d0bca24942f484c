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
import { shq } from '../../lib/build-script/shell';
import { FrontEvent, OBSERVER_HEADER, Traffic } from '../fakes/registry-front';

/**
 * fetch for the harness's own reads of the registry and the front (idempotent GETs and HEADs): a kept-alive connection the
 * server closed as the request went out ("other side closed", seen once in a benchmark run) is retried once on a new one.
 */
async function fetch(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await globalThis.fetch(url, init);
  } catch (e) {
    const code = (e as { cause?: { code?: string } }).cause?.code;
    if ((init?.method ?? 'GET') !== 'GET' && init?.method !== 'HEAD') throw e;
    if (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET') throw e;
    return globalThis.fetch(url, init);
  }
}

/** The tests' own registry reads: never faulted, never counted as the engines' traffic. */
export const OBSERVE = { [OBSERVER_HEADER]: '1' };

/** d20x: docker 20.10's daemon (classic image store) with the buildx plugin, where the registry strategy needs a BuildKit container. */
export type EngineName = 'd20' | 'd20x' | 'd26' | 'buildah';
/** Our three strategies, the naive recipe, the seed's "push when nothing was CACHED" rule, and the buildx docs recipe. */
export type RecipeName = StrategyName | 'naive' | 'seed' | 'buildx-docs';
const BASELINES: readonly RecipeName[] = ['naive', 'seed', 'buildx-docs'];

export interface Combo { readonly recipe: RecipeName; readonly engine: EngineName }

/** `recipe@engine`: a combo's name in tables, results and FAULTS_ONLY. */
export const comboName = (c: Combo): string => `${c.recipe}@${c.engine}`;

/** The daemon an engine runs on (d20x is docker 20.10's). */
export const daemonOf = (engine: EngineName): Exclude<EngineName, 'd20x'> => (engine === 'd20x' ? 'd20' : engine);

/**
 * CI runs the engine suites in lanes at once, one lane per set of engines (test/integration/lanes.sh): CIB_LANE_ENGINES
 * names this lane's engines, and a test on another engine runs in the other lane. Unset (a local run): every engine.
 */
export function laneEngines(): ReadonlySet<string> | undefined {
  const lane = process.env.CIB_LANE_ENGINES?.split(/[\s,]+/).filter(Boolean);
  const unknown = lane?.filter(e => !['d20', 'd26', 'buildah'].includes(e)) ?? [];
  if (unknown.length > 0) throw new Error(`CIB_LANE_ENGINES: '${unknown.join(' ')}' is not an engine (d20, d26, buildah)`);
  return lane && lane.length > 0 ? new Set(lane) : undefined;
}

/** Whether this process runs the tests of an engine (see laneEngines). */
export function inLane(engine: EngineName): boolean {
  const lane = laneEngines();
  return !lane || lane.has(daemonOf(engine));
}

/**
 * Where a lane leaves what the check across lanes compares (test/integration/cross-lane.ts): the suites' results as JSON.
 * Unset: nothing is written.
 */
export function writeLaneResult(name: string, value: unknown): void {
  const dir = process.env.CIB_RESULTS_DIR;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(value, null, 1));
}

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

/**
 * One step of a test Dockerfile. RUN steps print a marker (`RAN-STEP-<ID>`) that only appears when the command really
 * runs (the header shows the upper-case source, the output the lower-case result): an independent check of the parser.
 */
interface StepDef {
  /** Lower case: the marker's id. */
  readonly id: string;
  readonly stage: string;
  readonly line: string;
  /** The context file the step copies. */
  readonly input?: 'deps' | 'app';
  /** The stage whose result the step copies (`COPY --from`). */
  readonly from?: string;
}

/** A test Dockerfile: stages (each FROM the base image or an earlier stage), their steps, and metadata lines at the end. */
export interface Layout {
  readonly name: string;
  readonly stages: ReadonlyArray<{ readonly name: string; readonly from: string }>;
  readonly steps: readonly StepDef[];
  readonly metadata: readonly string[];
  /** A directory copied into the build context first. @default - none */
  readonly context?: string;
  /** Writes the inputs a scenario changes. @default - deps.txt and app.txt hold them */
  readonly writeInputs?: (dir: string, deps: string, app: string) => void;
}

const run = (id: string, rest: string): string => `RUN echo RAN-STEP-${id.toUpperCase()} | tr A-Z a-z && ${rest}`;

/** The 6-step, single-stage project. */
export const SINGLE: Layout = {
  name: 'single',
  stages: [{ name: '', from: 'BASE' }],
  steps: [
    { id: '2', stage: '', line: run('2', 'echo setup > /setup') },
    { id: '3', stage: '', line: run('3', 'mkdir -p /app && head -c 262144 /dev/urandom > /app/tools.bin') },
    { id: '4', stage: '', line: 'COPY deps.txt /app/deps.txt', input: 'deps' },
    { id: '5', stage: '', line: run('5', 'sleep 2 && head -c 1048576 /dev/urandom > /app/deps.bin') },
    { id: '6', stage: '', line: 'COPY app.txt /app/app.txt', input: 'app' },
    // The app's own build (compile, bundle) runs on every app change: 1 s here.
    { id: '7', stage: '', line: run('7', 'sleep 1 && cat /app/app.txt > /app/built') },
  ],
  metadata: [],
};

/**
 * A multi-stage project shaped like a real service: `tools` (a base stage), `deps` (installs dependencies), `build`
 * FROM deps (a fixed step, then compiles the app), and a `runtime` stage FROM tools that COPYs from deps and from build, with the
 * Docker-only configuration (HEALTHCHECK among it) that every strategy must push unchanged.
 */
export const MULTI: Layout = {
  name: 'multi',
  stages: [{ name: 'tools', from: 'BASE' }, { name: 'deps', from: 'tools' }, { name: 'build', from: 'deps' }, { name: 'runtime', from: 'tools' }],
  steps: [
    { id: 't1', stage: 'tools', line: run('t1', 'mkdir -p /t && head -c 65536 /dev/urandom > /t/tools.bin') },
    { id: 'd1', stage: 'deps', line: 'COPY deps.txt /deps/deps.txt', input: 'deps' },
    { id: 'd2', stage: 'deps', line: run('d2', 'sleep 1 && head -c 524288 /dev/urandom > /deps/deps.bin') },
    // A cached step inside a stage FROM another stage, before the changed one: its result is in the build stage's ref only
    // (bench:real's `COPY tsconfig.json`, which the inline strategy re-ran on a new branch when BuildKit state was kept).
    { id: 'b0', stage: 'build', line: run('b0', 'mkdir -p /src && echo strict > /src/build.cfg') },
    { id: 'b1', stage: 'build', line: 'COPY app.txt /src/app.txt', input: 'app' },
    { id: 'b2', stage: 'build', line: run('b2', 'cat /src/app.txt /deps/deps.txt > /src/out') },
    { id: 'r1', stage: 'runtime', line: 'COPY --from=deps /deps /deps', from: 'deps' },
    { id: 'r2', stage: 'runtime', line: 'COPY --from=build /src/out /app/out', from: 'build' },
    { id: 'r3', stage: 'runtime', line: run('r3', 'cat /app/out > /app/built') },
  ],
  metadata: [
    'ENV APP_MODE=production', 'EXPOSE 8080', 'LABEL org.example.service=web', 'WORKDIR /app', 'USER nobody',
    'HEALTHCHECK --interval=30s --timeout=3s CMD test -f /app/built', 'ENTRYPOINT ["/bin/sh", "-c"]', 'CMD ["cat /app/built"]',
  ],
};

/** The step a parser title names (BuildKit `[stage n/m] LINE`, buildah `STEP k/n: LINE`), or undefined (FROM, metadata). */
export function stepOf(layout: Layout, title: string): string | undefined {
  const m = /^(?:\[(?:([^\] ]+) )?(\d+)\/(\d+)\] )?(STEP \d+\/\d+: )?(.*)$/.exec(title)!;
  const [, named, k, , buildah, line] = m;
  // The stage: BuildKit names it ("[deps 2/3]"); buildah numbers it ("[2/4] STEP 1/3:"); one stage has neither.
  const stage = named ?? (buildah && k ? layout.stages[Number(k) - 1]?.name : undefined);
  const candidates = layout.steps.filter(s => s.line === line);
  return (stage === undefined || candidates.length === 1 ? candidates[0] : candidates.find(s => s.stage === stage))?.id;
}

/** A build context on disk whose deps/app files the scenarios change. */
export class Project {
  public readonly dir: string;
  public deps = 'deps-v1';
  public app = 'app-v1';

  constructor(public readonly baseImage: string, public readonly layout: Layout = SINGLE) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-project-'));
    const lines: string[] = [];
    for (const stage of layout.stages) {
      lines.push(`FROM ${stage.from === 'BASE' ? baseImage : stage.from}${stage.name ? ` AS ${stage.name}` : ''}`);
      lines.push(...layout.steps.filter(s => s.stage === stage.name).map(s => s.line));
    }
    if (layout.context) fs.cpSync(layout.context, this.dir, { recursive: true });
    fs.writeFileSync(path.join(this.dir, 'Dockerfile'), [...lines, ...layout.metadata, ''].join('\n'));
    this.write();
  }

  public write(): void {
    if (this.layout.writeInputs) return this.layout.writeInputs(this.dir, this.deps, this.app);
    fs.writeFileSync(path.join(this.dir, 'deps.txt'), this.deps + '\n');
    fs.writeFileSync(path.join(this.dir, 'app.txt'), this.app + '\n');
  }

  /**
   * Cache key of each step: what a perfect cache would have to hold to skip it. A step's key covers its stage's parent
   * chain, its own line and input, and for `COPY --from` the key of the copied stage's last step.
   */
  public stepKeys(): Map<string, string> {
    const keys = new Map<string, string>();
    const last = new Map<string, string>();
    for (const stage of this.layout.stages) {
      let key = stage.from === 'BASE' ? 'base' : last.get(stage.from)!;
      for (const s of this.layout.steps.filter(x => x.stage === stage.name)) {
        const input = s.input === 'deps' ? this.deps : s.input === 'app' ? this.app : s.from ? last.get(s.from)! : '';
        key = createHash('sha256').update(`${key}\0${s.line}\0${input}`).digest('hex');
        keys.set(s.id, key);
      }
      last.set(stage.name, key);
    }
    return keys;
  }

  /** The step a parser title names, or undefined (FROM, metadata). */
  public stepOf(title: string): string | undefined {
    return stepOf(this.layout, title);
  }

  public remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface BuildResult {
  /** Step ids, in Dockerfile order. */
  readonly executed: string[];
  readonly ideal: string[];
  /** RUN steps whose marker appeared in the log. */
  readonly markers: string[];
  readonly seconds: number;
  readonly cacheBytesAdded: number;
  /** What the app repository gained (blobs and manifests). */
  readonly appBytesAdded: number;
  /** Bytes the build pulled from and pushed to the registry (app, cache and base repositories), when counted. */
  readonly traffic?: { readonly pulled: number; readonly pushed: number };
  readonly exports: Record<string, string>;
  /** What the script printed. */
  readonly log: string;
  /** The engine's build log (the input of the step parser). */
  readonly buildLog: string;
  /** The script's cache-report.json (our strategies only). */
  readonly report?: CacheReport;
  /** The script's exit status (0 unless the request allowed failure). */
  readonly status: number;
}

/** cache-report.json as the report step writes it. */
export interface CacheReport {
  readonly strategy: string;
  /** Nothing built: the tag existed (a re-run), or `reusedFrom` (a record tag) had the same inputs. */
  readonly reused: boolean;
  readonly reusedFrom: string | null;
  readonly stepsTotal: number;
  readonly stepsCached: number;
  readonly stepsExecuted: number;
  readonly hitRatio: number;
  readonly refsRead: string[];
  readonly refWritten: string;
  readonly cacheBytesPushed: number;
  readonly buildSeconds: number;
  /** Seconds each step took (setup, login, refs, build, cache). */
  readonly stepSeconds: Record<string, number>;
  readonly verdict: string;
  /** Steps per platform, for a multi-platform build. */
  readonly platforms?: Array<{ platform: string; stepsTotal: number; stepsCached: number }>;
  readonly steps: Array<{ step: string; status: string; seconds: number | null }>;
}

/** Registry contents reachable from the tags of one repository: manifests and blobs with sizes. */
export interface RepoContents { readonly manifests: Map<string, number>; readonly blobs: Map<string, number> }

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Descriptor { readonly digest: string; readonly size: number; readonly mediaType?: string }
interface Manifest { readonly manifests?: Descriptor[]; readonly config?: Descriptor; readonly layers?: Descriptor[] }

/**
 * Calls onManifest once for every manifest reachable from a repository's tags (image manifests, and those an index names),
 * with its digest, its size in bytes and its content. A manifest that cannot be read is skipped, or, when strict, an error.
 */
async function walkManifests(
  registry: string, repo: string, strict: boolean, onManifest: (digest: string, bytes: number, m: Manifest) => void,
): Promise<void> {
  const tagsRes = await fetch(`http://${registry}/v2/${repo}/tags/list?n=100000`, { headers: OBSERVE });
  if (tagsRes.status === 404) return;
  const tags = ((await tagsRes.json()) as { tags?: string[] | null }).tags ?? [];
  const seen = new Set<string>();
  const visit = async (ref: string): Promise<void> => {
    if (seen.has(ref)) return;
    seen.add(ref);
    const res = await fetch(`http://${registry}/v2/${repo}/manifests/${ref}`, { headers: { Accept: MANIFEST_ACCEPT, ...OBSERVE } });
    if (!res.ok) {
      if (strict) throw new Error(`GET ${registry}/${repo} manifest ${ref}: ${res.status}`);
      return;
    }
    const text = await res.text();
    const digest = res.headers.get('docker-content-digest') ?? ref;
    if (digest !== ref && seen.has(digest)) return;
    seen.add(digest);
    const m = JSON.parse(text) as Manifest;
    onManifest(digest, Buffer.byteLength(text), m);
    for (const child of m.manifests ?? []) await visit(child.digest);
  };
  for (const t of tags) await visit(t);
}

export async function repoContents(registry: string, repo: string): Promise<RepoContents> {
  const manifests = new Map<string, number>();
  const blobs = new Map<string, number>();
  await walkManifests(registry, repo, false, (digest, bytes, m) => {
    manifests.set(digest, bytes);
    for (const b of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) blobs.set(b.digest, b.size);
  });
  return { manifests, blobs };
}

/** The media type of every layer reachable from a repository's tags (image manifests, and those an index names). */
export async function layerMediaTypes(registry: string, repo: string): Promise<Map<string, string>> {
  const types = new Map<string, string>();
  // Strict: a manifest left out would leave its layers unchecked.
  await walkManifests(registry, repo, true, (_digest, _bytes, m) => {
    for (const l of m.layers ?? []) types.set(l.digest, l.mediaType ?? '');
  });
  return types;
}

/** Bytes pulled and pushed so far through the front, summed over some repositories. */
async function traffic(control: string, repositories: readonly string[]): Promise<{ pulled: number; pushed: number }> {
  let pulled = 0;
  let pushed = 0;
  for (const r of repositories) {
    const t = (await (await fetch(`${control}/traffic?repository=${encodeURIComponent(r)}`)).json()) as Partial<Traffic>;
    pulled += (t.blobBytesPulled ?? 0) + (t.manifestBytesPulled ?? 0);
    pushed += (t.blobBytesPushed ?? 0) + (t.manifestBytesPushed ?? 0);
  }
  return { pulled, pushed };
}

function bytesAdded(before: RepoContents, after: RepoContents): number {
  let n = 0;
  for (const [d, s] of after.manifests) if (!before.manifests.has(d)) n += s;
  for (const [d, s] of after.blobs) if (!before.blobs.has(d)) n += s;
  return n;
}

/** CIB_CAPTURE_LOGS=DIR keeps engine logs (the parser's fixtures come from there): writes `name` there when it is set. */
export function captureLog(name: string, text: string): void {
  const dir = process.env.CIB_CAPTURE_LOGS;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), text);
}

/** Runs bash with a script and environment; returns output and status (never throws). */
function bash(script: string, env: NodeJS.ProcessEnv, cwd: string, timeoutMs = 600_000): { out: string; status: number } {
  const r = spawnSync('bash', ['-c', script], { env, cwd, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return { out: (r.stdout ?? '') + (r.stderr ?? ''), status: r.status ?? 1 };
}

/**
 * Restarts docker 20.10 or docker 26 with empty data roots (`engines.sh fresh-d20|fresh-d26`), as a CodeBuild host starts: their
 * BuildKit keeps cache keys across `docker builder prune`, and with the keys the tests before left, later builds lost cache records
 * (see engines.sh). Any other engine has nothing to restart.
 */
export function freshEngine(name: EngineName): void {
  const docker = daemonOf(name);
  if (docker !== 'd20' && docker !== 'd26') return;
  // The restart waits for engines.sh's lock (up to 900 s) while CI's other lane restarts its own engine.
  const r = spawnSync('bash', [path.join(__dirname, 'engines.sh'), `fresh-${docker}`], { encoding: 'utf8', timeout: 1_200_000 });
  if (r.status !== 0) throw new Error(`engines.sh fresh-${docker} failed:\n${r.stdout}${r.stderr}`);
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
    // On the engines' own filesystem (engines.sh: this machine's root filesystem has no journal, and there a storage made right
    // after the last one was removed spends seconds in the kernel on every file it creates).
    this.buildahRoot = fs.mkdtempSync(path.join(this.vars.CIB_ENGINES_SCRATCH || '/var/tmp', 'cib-buildah-'));
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
  const res = await fetch(`http://${registry}/v2/${rest.join('/')}/manifests/${tag}`, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT, ...OBSERVE } });
  return res.ok ? res.headers.get('docker-content-digest') ?? undefined : undefined;
}

/** The configuration (`config` of the image config blob) of the image a digest names; the first manifest of an index. */
export async function imageConfig(repository: string, digest: string): Promise<Record<string, unknown>> {
  return (await imageContent(repository, digest)).config;
}

/** An image's content: its layers' uncompressed digests (the config's rootfs) and its runtime configuration. */
export async function imageContent(repository: string, digest: string): Promise<{ diffIds: string[]; config: Record<string, unknown> }> {
  const [registry, ...rest] = repository.split('/');
  const base = `http://${registry}/v2/${rest.join('/')}`;
  let manifest = (await (await fetch(`${base}/manifests/${digest}`, { headers: { Accept: MANIFEST_ACCEPT, ...OBSERVE } })).json()) as Manifest;
  if (manifest.manifests) {
    manifest = (await (await fetch(`${base}/manifests/${manifest.manifests[0].digest}`, { headers: { Accept: MANIFEST_ACCEPT, ...OBSERVE } })).json()) as Manifest;
  }
  const blob = (await (await fetch(`${base}/blobs/${manifest.config!.digest}`, { headers: OBSERVE })).json()) as {
    config?: Record<string, unknown>; rootfs?: { diff_ids?: string[] };
  };
  return { diffIds: blob.rootfs?.diff_ids ?? [], config: blob.config ?? {} };
}

/** Renders our build script for a strategy (the same text the buildspec carries). */
export function renderScript(strategy: StrategyName): string {
  return new BuildScript({ strategy }).renderScript();
}

/** The parser's verdict on each step of a log (FROM and metadata steps, which the project does not number, left out). */
export function parseSteps(log: string, format: 'buildkit' | 'buildah', project: Project): Array<{ id: string; status: string }> {
  const tmp = path.join(os.tmpdir(), `cib-log-${process.pid}-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(tmp, log);
  try {
    const r = spawnSync('awk', [format === 'buildah' ? BUILDAH_STEPS_AWK : BUILDKIT_STEPS_AWK, tmp], { encoding: 'utf8' });
    return r.stdout.split('\n').filter(Boolean).flatMap(line => {
      const [status, , title] = line.split('\t');
      const id = project.stepOf(title);
      return id === undefined ? [] : [{ id, status }];
    });
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Shell for the baselines, run as the engine's client would. */
function baselineScript(recipe: RecipeName, repos: Repos, tag: string): string {
  if (recipe === 'buildx-docs') {
    // docs.docker.com's registry cache recipe: export mode=max on every build. With --provenance=false, else the
    // containerd image store PUTs the tag twice and the immutable app repository refuses the push.
    const cache = `${repos.cache}:buildcache`;
    return `set -euo pipefail; docker buildx build --progress=plain --network host --provenance=false --cache-from type=registry,ref=${cache} `
      + `--cache-to type=registry,ref=${cache},mode=max,image-manifest=true,oci-mediatypes=true --push -t ${repos.app}:${tag} . 2>&1 | tee build.log`;
  }
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
  /**
   * Restart docker with empty data roots before the build (freshEngine), as a CodeBuild host starts, unless `keepLocal`:
   * a wipe leaves BuildKit's cache keys and records, and with them inline exports dropped records (README, "The inline miss").
   */
  readonly freshHost?: boolean;
  /** More environment for the script (configuration variables). */
  readonly env?: Record<string, string>;
  /** The front's control URL: count the bytes the build pulled and pushed (app, cache and base repositories). */
  readonly control?: string;
  /** Return a failed build instead of throwing (the fault suite). */
  readonly mayFail?: boolean;
}

export async function runBuild(req: BuildRequest): Promise<BuildResult> {
  const { combo, engine, project, repos } = req;
  project.write();
  if (req.freshHost && !req.keepLocal) freshEngine(engine.name);
  if (!req.keepLocal) engine.wipe();
  const before = await repoContents(repos.registry, repos.cache.slice(repos.registry.length + 1));
  const appBefore = await repoContents(repos.registry, repos.app.slice(repos.registry.length + 1));
  const trafficRepos = [repos.app, repos.cache, project.baseImage.replace(/:[^/:]+$/, '')].map(r => r.slice(repos.registry.length + 1));
  const trafficBefore = req.control ? await traffic(req.control, trafficRepos) : undefined;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-work-'));
  let script: string;
  if (BASELINES.includes(combo.recipe)) {
    script = baselineScript(combo.recipe, repos, req.tag);
  } else {
    const file = path.join(workDir, 'cached-build.sh');
    fs.writeFileSync(file, renderScript(combo.recipe as StrategyName));
    // CIB_TRACE_DIR=DIR: the script runs under bash -x, each command with its time (DIR/TAG-RECIPE-ENGINE.trace), and the cache
    // step's log is kept there: where a build's seconds go, outside the engine.
    script = process.env.CIB_TRACE_DIR
      ? `bash -c 'PS4="+ \\$EPOCHREALTIME "; BASH_XTRACEFD=9; set -x; . "$0"' ${shq(file)} 9>>${shq(path.join(process.env.CIB_TRACE_DIR, `${req.tag}-${combo.recipe}-${combo.engine}.trace`))}`
      : `bash ${shq(file)}`;
  }
  const env: NodeJS.ProcessEnv = {
    ...engine.env(), APP_REPOSITORY_URI: repos.app, CACHE_REPOSITORY_URI: repos.cache,
    IMAGE_TAG: req.tag, CACHE_BRANCH: req.branch, CIB_NETWORK: 'host', CIB_WORK_DIR: workDir,
    // The scenarios measure the layer cache: a commit that changes nothing builds, its steps from cache, unless a test or the
    // benchmark turns the skip on (CIB_SKIP_UNCHANGED=true, the product's default).
    CIB_SKIP_UNCHANGED: 'false', ...req.env,
  };
  const t0 = process.hrtime.bigint();
  const r = bash(script, env, project.dir);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const buildLog = path.join(BASELINES.includes(combo.recipe) ? project.dir : workDir, 'build.log');
  const log = fs.existsSync(buildLog) ? fs.readFileSync(buildLog, 'utf8') : '';
  const reportFile = path.join(workDir, 'cache-report.json');
  const report = fs.existsSync(reportFile) ? JSON.parse(fs.readFileSync(reportFile, 'utf8')) as CacheReport : undefined;
  const cachePushLog = path.join(workDir, 'cache-push.log');
  if (process.env.CIB_TRACE_DIR && fs.existsSync(cachePushLog)) {
    fs.copyFileSync(cachePushLog, path.join(process.env.CIB_TRACE_DIR, `${req.tag}-${combo.recipe}-${combo.engine}.cache-push.log`));
  }
  fs.rmSync(workDir, { recursive: true, force: true });
  if (r.status !== 0 && !req.mayFail) throw new Error(`${combo.recipe}@${combo.engine} build ${req.tag} failed (exit ${r.status}):\n${r.out.slice(-6000)}`);
  const after = await repoContents(repos.registry, repos.cache.slice(repos.registry.length + 1));
  const appAfter = await repoContents(repos.registry, repos.app.slice(repos.registry.length + 1));
  const trafficAfter = req.control ? await traffic(req.control, trafficRepos) : undefined;
  const steps = parseSteps(log, combo.engine === 'buildah' ? 'buildah' : 'buildkit', project);
  const keys = project.stepKeys();
  const ids = project.layout.steps.map(x => x.id);
  const exported: Record<string, string> = {};
  for (const m of r.out.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) exported[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
  return {
    // Two steps with one cache key are one step to BuildKit (the same COPY on the same parent in two stages): it prints
    // it once, under either stage's name.
    executed: ids.filter(id => steps.some(x => x.status === 'executed' && keys.get(x.id) === keys.get(id))),
    ideal: ids.filter(id => !req.available.has(keys.get(id)!)),
    markers: ids.filter(id => new RegExp(`ran-step-${id}\\b`).test(log)),
    seconds,
    cacheBytesAdded: bytesAdded(before, after),
    appBytesAdded: bytesAdded(appBefore, appAfter),
    traffic: trafficBefore && trafficAfter
      ? { pulled: trafficAfter.pulled - trafficBefore.pulled, pushed: trafficAfter.pushed - trafficBefore.pushed } : undefined,
    exports: exported,
    log: r.out,
    buildLog: log,
    report,
    status: r.status,
  };
}

/** A scenario: the changes before each build, on which branch. */
export interface ScenarioBuild {
  readonly branch: string;
  readonly change?: 'app' | 'deps' | 'none';
  /** More environment for this build's script, over the scenario's. */
  readonly env?: Record<string, string>;
}
export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly builds: readonly ScenarioBuild[];
  /** The project's Dockerfile. @default SINGLE */
  readonly layout?: Layout;
}

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
  {
    name: 'M1', title: 'multi-stage: app change, deps change, no change, a new branch', layout: MULTI,
    builds: [
      { branch: 'main', change: 'app' }, { branch: 'main', change: 'app' }, { branch: 'main', change: 'deps' },
      { branch: 'main', change: 'none' }, { branch: 'feature/multi', change: 'app' }, { branch: 'main', change: 'app' },
    ],
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
 * The step keys a build on `branch` can find in the cache, given the keys each branch's builds produced: its own branch's and
 * main's (the branch-ref strategies read those refs), or every branch's with buildah (one content-addressed step cache).
 */
export function availableKeys(combo: Combo, built: ReadonlyMap<string, ReadonlySet<string>>, branch: string): Set<string> {
  const readable = combo.recipe === 'buildah' ? [...built.keys()] : [branch, 'main'];
  return new Set(readable.flatMap(b => [...(built.get(b) ?? [])]));
}

/**
 * Runs a scenario: every build on a wiped builder. The ideal for each build is computed from what
 * changed: a step may be skipped only if a previous build on the branch or the default branch (with buildah, any
 * branch) built exactly the same prefix of steps.
 */
export async function runScenario(combo: Combo, scenario: Scenario, engine: Engine, vars: Record<string, string>,
  options: {
    floor?: boolean; rerun?: boolean; env?: Record<string, string>; onBuild?: (i: number, r: BuildResult) => void;
    /** Base image of the project. @default the engines' busybox base */
    baseImage?: string;
    /** Keep the builder's local state between builds (the floor of a whole scenario). */
    keepLocal?: boolean;
    /** Restart docker with empty data roots before every build (BuildRequest.freshHost). */
    freshHost?: boolean;
  } = {},
): Promise<ScenarioRun> {
  const project = new Project(options.baseImage ?? vars.CIB_BASE_IMAGE, scenario.layout ?? SINGLE);
  const repos = await freshRepos(vars, combo, scenario.name);
  const built = new Map<string, Set<string>>();
  const results: BuildResult[] = [];
  let counter = 0;
  const change = (what: string | undefined) => {
    counter++;
    if (what === 'app' && counter > 1) project.app = `app-v${counter}`;
    if (what === 'deps') project.deps = `deps-v${counter}`;
  };
  const availableFor = (branch: string) => availableKeys(combo, built, branch);
  const remember = (branch: string) => {
    const set = built.get(branch) ?? new Set<string>();
    for (const k of project.stepKeys().values()) set.add(k);
    built.set(branch, set);
  };
  try {
    for (const [i, b] of scenario.builds.entries()) {
      change(b.change);
      const r = await runBuild({
        combo, engine, project, repos, branch: b.branch, tag: `b${i + 1}`, available: availableFor(b.branch), env: { ...options.env, ...b.env },
        control: vars.CIB_REGISTRY_CONTROL, keepLocal: options.keepLocal && i > 0, freshHost: options.freshHost,
      });
      remember(b.branch);
      results.push(r);
      options.onBuild?.(i, r);
    }
    const run: ScenarioRun = { combo, scenario, repos, builds: results };
    if (options.rerun) {
      const last = scenario.builds.length - 1;
      run.rerun = await runBuild({
        combo, engine, project, repos, branch: scenario.builds[last].branch, tag: `b${last + 1}`, available: new Set(project.stepKeys().values()),
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

/** The base stage both Dockerfiles start with, line for line: what one image builds, the other may reuse. */
const SHARED_STAGE = { name: 'base', from: 'BASE' };
const SHARED_STEPS = [
  { id: 's1', stage: 'base', line: run('s1', 'mkdir -p /shared && head -c 131072 /dev/urandom > /shared/tools.bin') },
  { id: 's2', stage: 'base', line: run('s2', 'sleep 1 && echo shared > /shared/setup') },
];

export const IMAGES_WEB: Layout = {
  name: 'web',
  stages: [SHARED_STAGE, { name: 'web', from: 'base' }],
  steps: [
    ...SHARED_STEPS,
    { id: 'w1', stage: 'web', line: 'COPY app.txt /web/app.txt', input: 'app' },
    { id: 'w2', stage: 'web', line: run('w2', 'cat /web/app.txt > /web/built') },
  ],
  metadata: ['CMD ["cat", "/web/built"]'],
};

export const IMAGES_API: Layout = {
  name: 'api',
  stages: [SHARED_STAGE, { name: 'api', from: 'base' }],
  steps: [
    ...SHARED_STEPS,
    { id: 'a1', stage: 'api', line: 'COPY deps.txt /api/deps.txt', input: 'deps' },
    { id: 'a2', stage: 'api', line: run('a2', 'head -c 65536 /dev/urandom > /api/deps.bin') },
    { id: 'a3', stage: 'api', line: 'COPY app.txt /api/app.txt', input: 'app' },
    { id: 'a4', stage: 'api', line: run('a4', 'cat /api/app.txt > /api/built') },
  ],
  metadata: ['CMD ["cat", "/api/built"]'],
};

export interface ImageBuild { readonly image: 'web' | 'api'; readonly branch: string; readonly change: 'app' | 'deps' | 'none' }

/** Web cold, then api (the base from web), app changes on each, api's dependency change, both on a new branch. */
export const IMAGE_BUILDS: readonly ImageBuild[] = [
  { image: 'web', branch: 'main', change: 'app' },
  { image: 'api', branch: 'main', change: 'app' },
  { image: 'web', branch: 'main', change: 'app' },
  { image: 'api', branch: 'main', change: 'deps' },
  { image: 'api', branch: 'feature/both', change: 'app' },
  { image: 'web', branch: 'feature/both', change: 'none' },
  { image: 'web', branch: 'feature/both', change: 'app' },
];

/** One build of the two-image scenario, with what it was. */
export interface ImagesRun {
  readonly builds: readonly BuildResult[];
  /** `web@main`, ... per build. */
  readonly labels: readonly string[];
}

/**
 * Several images share one cache repository (a CachedImageBuildGroup): web and api, each with its own immutable app
 * repository, writing `<image>--<branch>` refs to one cache repository and reading each other's (CIB_IMAGE_NAME,
 * CIB_CACHE_FROM_IMAGES). A step is ideal-cached when either image built the same step (same parent chain, line and input)
 * on the build's branch or the default branch. Every build on a wiped builder, unless `keepLocal` (the floor).
 */
export async function runImagesScenario(combo: Combo, engine: Engine, vars: Record<string, string>,
  options: { keepLocal?: boolean; crossImage?: boolean } = {}): Promise<ImagesRun> {
  const webRepos = await freshRepos(vars, combo, options.keepLocal ? 'images-floor' : 'images');
  const apiApp = webRepos.app.replace(/-app$/, '-api-app');
  await createRepository(vars, apiApp.slice(vars.CIB_REGISTRY.length + 1), 'IMMUTABLE');
  const repos: Record<'web' | 'api', Repos> = { web: webRepos, api: { ...webRepos, app: apiApp } };
  const projects = { web: new Project(vars.CIB_BASE_IMAGE, IMAGES_WEB), api: new Project(vars.CIB_BASE_IMAGE, IMAGES_API) };
  const built = new Map<string, Set<string>>();
  const builds: BuildResult[] = [];
  try {
    for (const [i, b] of IMAGE_BUILDS.entries()) {
      const project = projects[b.image];
      if (b.change === 'app') project.app = `app-v${i + 1}`;
      if (b.change === 'deps') project.deps = `deps-v${i + 1}`;
      const available = new Set([...(built.get(b.branch) ?? []), ...(built.get('main') ?? [])]);
      const other = b.image === 'web' ? 'api' : 'web';
      const r = await runBuild({
        combo, engine, project, repos: repos[b.image], branch: b.branch, tag: `b${i + 1}`, available, control: vars.CIB_REGISTRY_CONTROL,
        keepLocal: options.keepLocal && i > 0,
        env: { CIB_IMAGE_NAME: b.image, CIB_CACHE_FROM_IMAGES: options.crossImage === false ? '' : other },
      });
      const keys = built.get(b.branch) ?? new Set<string>();
      for (const k of project.stepKeys().values()) keys.add(k);
      built.set(b.branch, keys);
      builds.push(r);
    }
  } finally {
    projects.web.remove();
    projects.api.remove();
  }
  return { builds, labels: IMAGE_BUILDS.map(b => `${b.image}@${b.branch}`) };
}
