/**
 * `npm run bench:real`: a realistic service on real engines. A TypeScript web service (express and 143 other npm
 * packages, installed for real from the npm registry) in a 4-stage Dockerfile on a Node.js base image made from Debian:
 * `base` (apt packages, a user), `deps` (`npm ci` with a cache mount), `build` FROM deps (`tsc`), and `runtime` FROM base
 * (`npm ci --omit=dev`, `COPY --from=build`, HEALTHCHECK, tini). Six builds, each on a wiped builder: cold, source
 * change, dependency added, no change, source change, a new branch's first build. Every strategy on every engine, the
 * peer recipes (the naive inline recipe; the buildx docs recipe, `--cache-to type=registry,mode=max` on every build) and
 * the local floor (our registry strategy on docker 26, builder kept between builds), in one run.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
  BuildResult, captureLog, Combo, Engine, EngineName, Layout, loadEngines, runScenario, Scenario, STRATEGY_COMBOS,
} from '../test/integration/harness';

const SERVICE = path.join(__dirname, 'real', 'service');
const npmCi = (flags: string): string => `RUN --mount=type=cache,target=/root/.npm npm ci ${flags}--no-audit --no-fund`;

/** The service's Dockerfile as harness steps: inputs are the lock files (`deps`) and the sources (`app`). */
export const REAL: Layout = {
  name: 'real',
  stages: [{ name: 'base', from: 'BASE' }, { name: 'deps', from: 'base' }, { name: 'build', from: 'deps' }, { name: 'runtime', from: 'base' }],
  steps: [
    {
      id: 'apt', stage: 'base',
      line: 'RUN apt-get update && apt-get install -y --no-install-recommends tini curl ca-certificates && rm -rf /var/lib/apt/lists/* '
        + '&& useradd --create-home --uid 10001 app',
    },
    { id: 'workdir', stage: 'base', line: 'WORKDIR /app' },
    { id: 'lock', stage: 'deps', line: 'COPY package.json package-lock.json ./', input: 'deps' },
    { id: 'npm-ci', stage: 'deps', line: npmCi('') },
    { id: 'tsconfig', stage: 'build', line: 'COPY tsconfig.json ./' },
    { id: 'src', stage: 'build', line: 'COPY src ./src', input: 'app' },
    { id: 'tsc', stage: 'build', line: 'RUN npx tsc' },
    { id: 'rt-lock', stage: 'runtime', line: 'COPY package.json package-lock.json ./', input: 'deps' },
    { id: 'rt-npm-ci', stage: 'runtime', line: npmCi('--omit=dev ') },
    { id: 'dist', stage: 'runtime', line: 'COPY --from=build /app/dist ./dist', from: 'build' },
  ],
  metadata: [
    'ENV NODE_ENV=production', 'USER app', 'EXPOSE 3000',
    'HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://localhost:3000/health || exit 1',
    'ENTRYPOINT ["/usr/bin/tini", "--"]', 'CMD ["node", "dist/server.js"]',
  ],
  context: SERVICE,
  writeInputs: (dir, deps, app) => {
    const lock = deps === 'deps-v1' ? SERVICE : path.join(SERVICE, 'added');
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(lock, f), path.join(dir, f));
    fs.rmSync(path.join(dir, 'added'), { recursive: true, force: true });
    fs.writeFileSync(path.join(dir, 'src', 'version.ts'), `/** Changed by the benchmark's "source change" builds. */\nexport const VERSION = '${app}';\n`);
  },
};

export const REAL_SCENARIO: Scenario = {
  name: 'R', title: 'cold, source change, dependency added, no change, source change, new branch', layout: REAL,
  builds: [
    { branch: 'main', change: 'app' }, { branch: 'main', change: 'app' }, { branch: 'main', change: 'deps' },
    { branch: 'main', change: 'none' }, { branch: 'main', change: 'app' }, { branch: 'feature/new-thing', change: 'app' },
  ],
};

/** The service's Node.js base image (real/base-image.sh: made from Debian, pushed to the engines' registry), by reference. */
export function nodeBaseImage(): string {
  const base = spawnSync('bash', [path.join(__dirname, 'real', 'base-image.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (base.status !== 0) throw new Error('building the Node.js base image failed');
  return base.stdout.trim();
}

const NOOP = 3;
const WARM = [1, 2, 4, 5];

/** A row: `floor` for the local floor's runs (builder kept), first or last in the run. */
interface Row { readonly label: string; readonly combo: Combo; readonly ours: boolean; readonly floor?: 'first' | 'last' }

const floorRow = (when: 'first' | 'last'): Row => ({ label: `local floor (registry, builder kept), ${when}`, combo: { recipe: 'registry', engine: 'd26' }, ours: false, floor: when });
const ours = STRATEGY_COMBOS.map(combo => ({ label: `${combo.recipe}`, combo, ours: true }));
const BUILDX_DOCS: Row = { label: 'peer: buildx docs (`--cache-to type=registry,mode=max` every build)', combo: { recipe: 'buildx-docs', engine: 'd26' }, ours: false };
/**
 * The floor first and last (this machine's speed drifts over a run: the ratios use both), and the buildx docs recipe right after
 * our registry row, which it is compared with.
 */
const ROWS: readonly Row[] = [
  floorRow('first'),
  ...ours.filter(r => r.combo.recipe === 'registry'),
  BUILDX_DOCS,
  ...ours.filter(r => r.combo.recipe !== 'registry'),
  { label: 'peer: naive inline (`--cache-from app:latest`)', combo: { recipe: 'naive', engine: 'd20' }, ours: false },
  floorRow('last'),
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const mb = (n: number): string => (n / 2 ** 20).toFixed(n < 10 * 2 ** 20 ? 1 : 0);

/**
 * Seconds a BuildKit build spent fetching and unpacking layers it did not build: the sum, over the log's steps that downloaded
 * (`#N sha256:… 10MB / 46MB`) or extracted (`#N extracting sha256:…`) a layer, of the step's time (its last `DONE`). Such a step
 * is a cached one whose layers a later step needs on disk; the time is the pull and the unpacking, not the step.
 */
export function fetchUnpackSeconds(log: string): number {
  const fetched = new Set<string>();
  const done = new Map<string, number>();
  for (const line of log.split('\n')) {
    const m = /^#(\d+) (.*)$/.exec(line);
    if (!m) continue;
    if (/^(extracting sha256:[0-9a-f]{64}|sha256:[0-9a-f]{64} [\d.]+[kMG]?B \/ )/.test(m[2])) fetched.add(m[1]);
    const d = /^DONE ([\d.]+)s$/.exec(m[2]);
    if (d) done.set(m[1], Math.max(done.get(m[1]) ?? 0, Number(d[1])));
  }
  return [...fetched].reduce((s, id) => s + (done.get(id) ?? 0), 0);
}

async function main(): Promise<void> {
  const vars = loadEngines();
  const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/));
  const baseImage = nodeBaseImage();
  const engines = new Map<EngineName, Engine>();
  const engineFor = (n: EngineName) => engines.get(n) ?? engines.set(n, new Engine(n, vars)).get(n)!;
  const runs = new Map<Row, BuildResult[]>();
  // BENCH_ONLY=registry@d26,buildx-docs@d26 runs some rows, and the floor's (the ratios divide by it).
  const only = process.env.BENCH_ONLY?.split(',');
  const wanted = (row: Row): boolean => !only || row.floor !== undefined || only.includes(`${row.combo.recipe}@${row.combo.engine}`);
  // Every build on a fresh host, as CodeBuild runs it: docker restarted with empty data roots (not only wiped), unless
  // BENCH_KEEP_BUILDKIT=1 (the earlier runs: BuildKit's cache keys kept from the builds and rows before).
  const freshHost = process.env.BENCH_KEEP_BUILDKIT !== '1';
  // Our rows run as users get them: skipUnchangedBuilds on, so the no-change build is a retag. BENCH_SKIP_UNCHANGED=0 builds
  // it (every step from cache), which measures the cache alone. The floor measures the cache: it never skips.
  const skip = process.env.BENCH_SKIP_UNCHANGED !== '0';
  const date = new Date().toISOString().slice(0, 10);
  console.log(`real-workload benchmark, ${date}, this 2-core machine: ${REAL_SCENARIO.title}; every build on a wiped builder`
    + `${freshHost ? ' (docker restarted with empty data roots: a fresh host)' : ', BuildKit state kept (BENCH_KEEP_BUILDKIT=1)'}`
    + `; our rows ${skip ? 'skip an unchanged build (the default)' : 'build an unchanged build (BENCH_SKIP_UNCHANGED=0)'}`
    + `; engines' data on ${vars.CIB_ENGINES_FS === 'ext4' ? 'a new ext4 with a journal' : `the data dir's own filesystem (CIB_ENGINES_FS ${vars.CIB_ENGINES_FS ?? 'unset'})`}`);
  console.log('');
  console.log('| recipe | engine | executed/ideal steps per build | at ideal | wall s per build | MB pulled / pushed per build | '
    + 'pushed / new blobs | warm median | build step + cache step (medians) | warm/floor | no-op |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  const rows: string[] = [];
  try {
    for (const row of ROWS.filter(wanted)) {
      if (!started.has(row.combo.engine)) {
        console.log(`| ${row.label} | ${row.combo.engine} | engine not started | | | | | | | | |`);
        continue;
      }
      const run = await runScenario(row.combo, REAL_SCENARIO, engineFor(row.combo.engine), vars, {
        baseImage, keepLocal: row.floor !== undefined, freshHost, env: row.ours ? { CIB_SKIP_UNCHANGED: skip ? 'true' : 'false' } : undefined,
        onBuild: (i, r) => {
          process.stderr.write(`[real] ${row.label}@${row.combo.engine} build ${i + 1}: executed [${r.executed}] ideal [${r.ideal}] `
            + `${r.seconds.toFixed(1)} s (steps ${JSON.stringify(r.report?.stepSeconds ?? {})}), pulled ${mb(r.traffic?.pulled ?? 0)} MB, `
            + `pushed ${mb(r.traffic?.pushed ?? 0)} MB\n`);
          captureLog(`real-${row.combo.recipe}-${row.combo.engine}${row.floor ? `-floor-${row.floor}` : ''}-b${i + 1}.log`, `${r.log}\n${r.buildLog}`);
          const unknown = (r.report?.steps ?? []).map(st => st.step).filter(t => !/(FROM|ENV|USER|EXPOSE|HEALTHCHECK|ENTRYPOINT|CMD) /.test(t)
            && !REAL.steps.some(x => t.endsWith(x.line)));
          if (unknown.length > 0) process.stderr.write(`[real]   steps the harness does not know: ${JSON.stringify(unknown)}\n`);
        },
      });
      runs.set(row, run.builds);
      rows.push(row.label);
    }
  } finally {
    engines.forEach(e => e.dispose());
  }
  // The floor: the median of its warm builds in both of its runs (8 builds), its no-op the mean of the two.
  const floors = ROWS.filter(r => r.floor && runs.has(r)).map(r => runs.get(r)!);
  const floor = floors.length > 0 ? floors : undefined;
  const floorWarm = floor ? median(floor.flatMap(f => WARM.map(i => f[i].seconds))) : NaN;
  const floorNoop = floor ? floor.reduce((sum, f) => sum + f[NOOP].seconds, 0) / floor.length : NaN;
  let ideal = 0;
  let total = 0;
  const ratios = new Map<string, number[]>();
  const noopRatios: number[] = [];
  for (const row of ROWS.filter(r => runs.has(r))) {
    const b = runs.get(row)!;
    const atIdeal = b.filter(x => x.executed.join() === x.ideal.join()).length;
    const warm = median(WARM.map(i => b[i].seconds));
    if (row.ours) {
      ideal += atIdeal;
      total += b.length;
      ratios.set(row.combo.recipe, [...(ratios.get(row.combo.recipe) ?? []), warm / floorWarm]);
      noopRatios.push(b[NOOP].seconds / floorNoop);
    }
    const pushed = b.reduce((s, x) => s + (x.traffic?.pushed ?? 0), 0);
    const added = b.reduce((s, x) => s + x.cacheBytesAdded + x.appBytesAdded, 0);
    // Our script's own split of a warm build: the build step (build and app push) and the cache step (export).
    // Medians of each part on its own (they need not add up to the warm median); '-' when a warm build has no report.
    const step = (name: string): string => {
      const xs = WARM.map(i => b[i].report?.stepSeconds?.[name]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
      return xs.length === WARM.length ? median(xs).toFixed(1) : '-';
    };
    const split = row.ours ? `${step('build')} + ${step('cache')} s` : '-';
    console.log(`| ${row.label} | ${row.combo.engine} | ${b.map(x => `${x.executed.length}/${x.ideal.length}${x.executed.join() === x.ideal.join() ? '' : '✗'}`).join(' ')}`
      + ` | ${atIdeal}/${b.length} | ${b.map(x => x.seconds.toFixed(1)).join(' ')}`
      + ` | ${b.map(x => `${mb(x.traffic?.pulled ?? 0)}/${mb(x.traffic?.pushed ?? 0)}`).join(' ')}`
      + ` | ${(pushed / Math.max(added, 1)).toFixed(2)} | ${warm.toFixed(1)} s | ${split} | ${(warm / floorWarm).toFixed(2)} | ${b[NOOP].seconds.toFixed(1)} s |`);
  }
  const r = (name: string): string => (ratios.has(name) ? median(ratios.get(name)!).toFixed(2) : '-');
  // What no strategy can go under on a fresh host: the floor's build plus fetching and unpacking the layers the executed steps
  // need, as BuildKit's log of our registry row times it (its warm builds run the floor's steps on a fresh host).
  const registry = [...runs.entries()].find(([row]) => row.ours && row.combo.recipe === 'registry')?.[1];
  if (registry && floor) {
    const unpack = median(WARM.map(i => fetchUnpackSeconds(registry[i].buildLog)));
    console.log('');
    console.log(`Fetch and unpack (registry, BuildKit's log, median of the warm builds): ${unpack.toFixed(1)} s. A fresh host's floor: the local`
      + ` floor's ${floorWarm.toFixed(1)} s + ${unpack.toFixed(1)} s = ${(floorWarm + unpack).toFixed(1)} s, ${((floorWarm + unpack) / floorWarm).toFixed(2)} × the floor.`);
  }
  if (floor && floor.length > 1) {
    console.log(`Floor: warm median ${floor.map(f => median(WARM.map(i => f[i].seconds)).toFixed(1)).join(' s first, ')} s last; the ratios use the median of`
      + ` its ${floor.length * WARM.length} warm builds, ${floorWarm.toFixed(1)} s.`);
  }
  console.log('');
  console.log('Steps: apt, WORKDIR (base); package files, npm ci (deps); tsconfig, src, tsc (build); package files, npm ci --omit=dev, COPY --from=build');
  console.log('(runtime). ✗ = executed differs from ideal. Warm: median of builds 2, 3, 5, 6. Pushed / new blobs: bytes uploaded over the six');
  console.log('builds divided by what the app and cache repositories gained (distinct new blobs and manifests).');
  console.log(`real-bench: ${ideal}/${total} ideal, warm/floor registry ${r('registry')} inline ${r('inline')} buildah ${r('buildah')}, `
    + `no-op/floor ${median(noopRatios).toFixed(2)}`);
}

if (require.main === module) {
  main().catch(e => {
    console.error(e);
    process.exit(1);
  });
}
