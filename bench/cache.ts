/**
 * `npm run bench:cache`: every strategy × engine × scenario on real engines (wiped builder before every
 * build), with the naive recipe and the seed's rule as baselines on docker 20.10 in the same run.
 * Then the several-images rows: two images sharing one cache repository (IMAGES_WEB, IMAGES_API). Prints Markdown tables and
 * machine-readable lines. BENCH_ONLY=images runs the several-images rows alone.
 */
import * as fs from 'fs';
import {
  BASELINE_COMBOS, BuildResult, Combo, Engine, EngineName, IMAGE_BUILDS, IMAGES_API, IMAGES_WEB, loadEngines, runBuild, runImagesScenario,
  runScenario, SCENARIOS, STRATEGY_COMBOS, Project, freshRepos,
} from '../test/integration/harness';
import { NativeResult, PLATFORM_BUILDS, PlatformResult, PLATFORMS, runNativeScenario, runPlatformsScenario, STEPS } from '../test/integration/platforms';

const FLOOR_BUILDS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function bytes(n: number): string {
  if (n === 0) return '0';
  if (n < 1024 * 1024) return `${Math.round(n / 1024)}K`;
  return `${(n / 1024 / 1024).toFixed(1)}M`;
}

/** Wall seconds of app-change builds on a builder that keeps its local cache: the floor. */
async function floor(combo: Combo, engine: Engine, vars: Record<string, string>, env?: Record<string, string>): Promise<number> {
  const project = new Project(vars.CIB_BASE_IMAGE);
  const repos = await freshRepos(vars, combo, 'floor');
  const times: number[] = [];
  try {
    for (let i = 0; i <= FLOOR_BUILDS; i++) {
      project.app = `floor-app-${i}`;
      // Build 0 fills the local cache (on a wiped builder); builds 1..N keep it.
      const r = await runBuild({ combo, engine, project, repos, branch: 'main', tag: `f${i}`, available: new Set(), keepLocal: i > 0, env });
      if (i > 0) times.push(r.seconds);
    }
  } finally {
    project.remove();
  }
  return median(times);
}

async function main(): Promise<void> {
  const vars = loadEngines();
  const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/));
  // d20x: docker 20.10's daemon with buildx; the registry strategy there needs a BuildKit container, and Docker Hub is out of reach.
  if (started.has('d20') && started.has('d26')) started.add('d20x');
  const fallbackEnv = { CIB_BUILDKIT_IMAGE: `${vars.CIB_REGISTRY}/missing/buildkit:none` };
  const only = process.env.BENCH_ONLY;
  if (only !== undefined && only !== 'images') throw new Error(`BENCH_ONLY must be 'images' (the several-images rows alone), got '${only}'`);
  const runs: Array<{ combo: Combo; env?: Record<string, string>; label?: string }> = only === 'images' ? [] : [
    ...STRATEGY_COMBOS.map(combo => ({ combo })),
    { combo: { recipe: 'registry', engine: 'd20x' }, env: fallbackEnv, label: 'registry (no BuildKit image: falls back to inline)' },
    ...BASELINE_COMBOS.map(combo => ({ combo })),
  ];
  const engines = new Map<EngineName, Engine>();
  const engineFor = (n: EngineName) => engines.get(n) ?? engines.set(n, new Engine(n, vars)).get(n)!;
  const rows: string[] = [];
  let atIdeal = 0;
  let total = 0;
  let noopBytes = 0;
  const warmRatios: number[] = [];
  const date = new Date().toISOString().slice(0, 10);
  console.log(`cache benchmark, ${date}, ${process.env.HOSTNAME ?? 'this machine'}: every build on a wiped builder`);
  if (runs.length > 0) {
    console.log('');
    console.log('| strategy | engine | scenario | executed/ideal steps per build | at ideal | wall s per build | cache bytes added per build | warm/floor |');
    console.log('|---|---|---|---|---|---|---|---|');
  }
  try {
    for (const { combo, env, label } of runs) {
      if (!started.has(combo.engine)) {
        console.log(`| ${label ?? combo.recipe} | ${combo.engine} | - | engine not started | | | | |`);
        continue;
      }
      const engine = engineFor(combo.engine);
      const floorSeconds = await floor(combo, engine, vars, env);
      const ours = combo.recipe !== 'naive' && combo.recipe !== 'seed';
      for (const scenario of SCENARIOS) {
        const run = await runScenario(combo, scenario, engine, vars, { env });
        const b: BuildResult[] = run.builds;
        const ideal = b.filter(x => x.executed.join() === x.ideal.join()).length;
        // Warm builds: after the first, something changed but not everything (S1, S2 app builds, S4).
        const warm = b.slice(1).filter(x => x.ideal.length > 0 && x.ideal.length < 6);
        const ratio = median(warm.map(x => x.seconds / floorSeconds));
        if (ours) {
          atIdeal += ideal;
          total += b.length;
          if (scenario.name === 'S3') noopBytes += b.slice(1).reduce((s, x) => s + x.cacheBytesAdded, 0);
          warmRatios.push(...warm.map(x => x.seconds / floorSeconds));
        }
        const cells = b.map(x => `${x.executed.length}/${x.ideal.length}${x.executed.join() === x.ideal.join() ? '' : '✗'}`).join(' ');
        rows.push(`| ${label ?? combo.recipe} | ${combo.engine} | ${scenario.name} | ${cells} | ${ideal}/${b.length} | ${b.map(x => x.seconds.toFixed(1)).join(' ')}`
          + ` | ${b.map(x => bytes(x.cacheBytesAdded)).join(' ')} | ${warm.length ? ratio.toFixed(2) : '-'} (floor ${floorSeconds.toFixed(2)} s) |`);
        console.log(rows[rows.length - 1]);
      }
    }
    if (runs.length > 0) {
      console.log('');
      console.log('✗ = executed set differs from the ideal set. Warm/floor: median over the warm builds of the row, each divided by the');
      console.log(`median of ${FLOOR_BUILDS} app-change builds of the same recipe on a builder that kept its local cache.`);
      console.log(`cache-bench: ${atIdeal}/${total} ideal, no-op cache bytes ${noopBytes}, warm/floor median ${median(warmRatios).toFixed(2)}`);
    }
    await imagesRows(vars, started, engineFor);
  } finally {
    engines.forEach(e => e.dispose());
  }
}

/**
 * Two images (web, api) with a common base stage in one cache repository, seven builds on two branches. The floor is the same
 * seven builds on a builder that keeps its local cache; warm/floor is the median, over the warm builds (something cached,
 * something to run), of each build's time divided by the same build's floor time.
 */
async function imagesRows(vars: Record<string, string>, started: Set<string>, engineFor: (n: EngineName) => Engine): Promise<void> {
  console.log('');
  console.log('Several images: web and api share a base stage and one cache repository; builds web@main, api@main, web@main,');
  console.log('api@main (dependency change), api@feature, web@feature (no change), web@feature');
  console.log('');
  console.log('| strategy | engine | executed/ideal steps per build | at ideal | wall s per build | cache bytes added per build | warm/floor |');
  console.log('|---|---|---|---|---|---|---|');
  let atIdeal = 0;
  let total = 0;
  for (const combo of STRATEGY_COMBOS) {
    if (!started.has(combo.engine)) {
      total += IMAGE_BUILDS.length;
      console.log(`| ${combo.recipe} | ${combo.engine} | engine not started | | | | |`);
      continue;
    }
    const engine = engineFor(combo.engine);
    const run = await runImagesScenario(combo, engine, vars);
    const floorRun = await runImagesScenario(combo, engine, vars, { keepLocal: true });
    const b = run.builds;
    const ideal = b.filter(x => x.executed.join() === x.ideal.join()).length;
    atIdeal += ideal;
    total += b.length;
    // Warm: something came from the cache and something had to run.
    const steps = { web: IMAGES_WEB.steps.length, api: IMAGES_API.steps.length };
    const warm = b.map((x, i) => ({ x, i })).filter(({ x, i }) => x.ideal.length > 0 && x.ideal.length < steps[IMAGE_BUILDS[i].image]);
    const ratios = warm.map(({ x, i }) => x.seconds / floorRun.builds[i].seconds);
    const cells = b.map(x => `${x.executed.length}/${x.ideal.length}${x.executed.join() === x.ideal.join() ? '' : '✗'}`).join(' ');
    console.log(`| ${combo.recipe} | ${combo.engine} | ${cells} | ${ideal}/${b.length} | ${b.map(x => x.seconds.toFixed(1)).join(' ')}`
      + ` | ${b.map(x => bytes(x.cacheBytesAdded)).join(' ')} | ${ratios.length ? median(ratios).toFixed(2) : '-'} |`);
  }
  const platformRow = await platformsRow(vars, started, engineFor);
  console.log('');
  console.log(`multi-bench: platforms ${PLATFORMS.length}, images 2, ${atIdeal + platformRow.atIdeal}/${total + platformRow.total} ideal`);
}

/**
 * Several platforms in one build (registry strategy, docker 26, FROM the engines' two-platform base): a build is at the ideal
 * when every platform is. The floor is the same builds on a kept builder.
 */
async function platformsRow(vars: Record<string, string>, started: Set<string>, engineFor: (n: EngineName) => Engine):
Promise<{ atIdeal: number; total: number }> {
  console.log('');
  console.log(`Multi-platform: ${PLATFORMS.join(' + ')}, in one build and natively; builds main (app), main (app), main (386 deps), main (both deps),`);
  console.log('main (no change), feature (app), feature (amd64 deps), main (app). Cells: executed/ideal per platform.');
  console.log('');
  console.log('| strategy | engine | executed/ideal steps per build and platform | at ideal | wall s per build | cache bytes added per build | warm/floor |');
  console.log('|---|---|---|---|---|---|---|');
  const combo: Combo = { recipe: 'registry', engine: 'd26' };
  if (!started.has('d26') || !vars.CIB_MULTI_BASE_IMAGE) {
    console.log('| registry | d26 | engine or two-platform base not started | | | | |');
    return { atIdeal: 0, total: PLATFORM_BUILDS.length };
  }
  const engine = engineFor('d26');
  const { results } = await runPlatformsScenario(combo, engine);
  const { results: floorResults } = await runPlatformsScenario(combo, engine, { keepLocal: true });
  for (const x of [...results, ...floorResults]) fs.rmSync(x.artifacts, { recursive: true, force: true });
  const same = (x: PlatformResult, p: string) => x.steps.get(p)!.executed.join() === x.ideal.get(p)!.join();
  const atIdeal = results.filter(x => PLATFORMS.every(p => same(x, p))).length;
  const cells = results.map(x => PLATFORMS.map(p => `${x.steps.get(p)!.executed.length}/${x.ideal.get(p)!.length}${same(x, p) ? '' : '✗'}`).join('+'));
  // Warm: something came from the cache and something had to run, on some platform.
  const warm = results.map((x, i) => ({ x, i })).filter(({ x, i }) => i > 0 && PLATFORMS.some(p => x.ideal.get(p)!.length > 0)
    && PLATFORMS.some(p => x.ideal.get(p)!.length < STEPS.length));
  const ratios = warm.map(({ x, i }) => x.r.seconds / floorResults[i].r.seconds);
  console.log(`| registry, one builder | d26 | ${cells.join(' ')} | ${atIdeal}/${results.length} | ${results.map(x => x.r.seconds.toFixed(1)).join(' ')}`
    + ` | ${results.map(x => bytes(x.r.cacheBytesAdded)).join(' ')} | ${ratios.length ? median(ratios).toFixed(2) : '-'} |`);
  const native = await nativeRows(started, engineFor);
  return { atIdeal: atIdeal + native.atIdeal, total: results.length + native.total };
}

/**
 * The native path (one build per platform on a wiped builder, then the merge), per strategy. A build's wall time is the
 * slowest platform's (they run as parallel actions) plus the merge's; its floor, the same on builders that kept their cache.
 */
async function nativeRows(started: Set<string>, engineFor: (n: EngineName) => Engine): Promise<{ atIdeal: number; total: number }> {
  let atIdeal = 0;
  let total = 0;
  const combos: Combo[] = [{ recipe: 'registry', engine: 'd26' }, { recipe: 'inline', engine: 'd20' }, { recipe: 'buildah', engine: 'buildah' }];
  const wall = (x: NativeResult) => Math.max(...PLATFORMS.map(p => x.platforms.get(p)!.r.seconds)) + x.merge.seconds;
  for (const combo of combos) {
    total += PLATFORM_BUILDS.length;
    if (!started.has(combo.engine)) {
      console.log(`| ${combo.recipe}, native | ${combo.engine} | engine not started | | | | |`);
      continue;
    }
    const engine = engineFor(combo.engine);
    const { results } = await runNativeScenario(combo, engine);
    const { results: floorResults } = await runNativeScenario(combo, engine, { keepLocal: true });
    for (const x of [...results, ...floorResults]) fs.rmSync(x.artifacts, { recursive: true, force: true });
    const same = (x: NativeResult, p: string) => x.platforms.get(p)!.executed.join() === x.ideal.get(p)!.join();
    const ideal = results.filter(x => PLATFORMS.every(p => same(x, p))).length;
    atIdeal += ideal;
    const cells = results.map(x => PLATFORMS.map(p => `${x.platforms.get(p)!.executed.length}/${x.ideal.get(p)!.length}${same(x, p) ? '' : '✗'}`).join('+'));
    const warm = results.map((x, i) => ({ x, i })).filter(({ x, i }) => i > 0 && PLATFORMS.some(p => x.ideal.get(p)!.length > 0)
      && PLATFORMS.some(p => x.ideal.get(p)!.length < STEPS.length));
    const ratios = warm.map(({ x, i }) => wall(x) / wall(floorResults[i]));
    const added = (x: NativeResult) => PLATFORMS.reduce((n, p) => n + x.platforms.get(p)!.r.cacheBytesAdded, 0);
    console.log(`| ${combo.recipe}, native | ${combo.engine} | ${cells.join(' ')} | ${ideal}/${results.length} | ${results.map(x => wall(x).toFixed(1)).join(' ')}`
      + ` | ${results.map(x => bytes(added(x))).join(' ')} | ${ratios.length ? median(ratios).toFixed(2) : '-'} |`);
  }
  console.log('');
  console.log('Native: each platform built on a wiped builder of its own, then the merge (wall s: the slower platform + the merge).');
  return { atIdeal, total };
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
