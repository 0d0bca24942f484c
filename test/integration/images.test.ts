/**
 * Several images share one cache repository (a CachedImageBuildGroup): two Dockerfiles with a common base stage, each
 * image with its own (immutable) app repository, both writing `<image>--<branch>` refs to one cache repository and reading
 * each other's. Every build runs on a wiped builder; what a perfect cache would skip is computed over both images: a step
 * is cached when either image built the same step (same parent chain, same line, same input) on the build's branch or
 * the default branch. Executed must equal that ideal on every build, for every strategy on every engine.
 */
import {
  BuildResult, Combo, createRepository, Engine, EngineName, freshRepos, Layout, loadEngines, Project, Repos, runBuild, STRATEGY_COMBOS,
} from './harness';

const vars = loadEngines();
const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/).filter(Boolean));
const required = process.env.REQUIRE_ENGINES === '1';
const engines = new Map<EngineName, Engine>();
afterAll(() => engines.forEach(e => e.dispose()));

const run = (id: string, rest: string): string => `RUN echo RAN-STEP-${id.toUpperCase()} | tr A-Z a-z && ${rest}`;

/** The base stage both Dockerfiles start with, line for line: what one image builds, the other may reuse. */
const SHARED_STAGE = { name: 'base', from: 'BASE' };
const SHARED_STEPS = [
  { id: 's1', stage: 'base', line: run('s1', 'mkdir -p /shared && head -c 131072 /dev/urandom > /shared/tools.bin') },
  { id: 's2', stage: 'base', line: run('s2', 'sleep 1 && echo shared > /shared/setup') },
];

const WEB: Layout = {
  name: 'web',
  stages: [SHARED_STAGE, { name: 'web', from: 'base' }],
  steps: [
    ...SHARED_STEPS,
    { id: 'w1', stage: 'web', line: 'COPY app.txt /web/app.txt', input: 'app' },
    { id: 'w2', stage: 'web', line: run('w2', 'cat /web/app.txt > /web/built') },
  ],
  metadata: ['CMD ["cat", "/web/built"]'],
};

const API: Layout = {
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

interface ImageBuild { readonly image: 'web' | 'api'; readonly branch: string; readonly change: 'app' | 'deps' | 'none' }

/** Web cold, then api (the base from web), app changes on each, api's dependency change, both on a new branch. */
const BUILDS: readonly ImageBuild[] = [
  { image: 'web', branch: 'main', change: 'app' },
  { image: 'api', branch: 'main', change: 'app' },
  { image: 'web', branch: 'main', change: 'app' },
  { image: 'api', branch: 'main', change: 'deps' },
  { image: 'api', branch: 'feature/both', change: 'app' },
  { image: 'web', branch: 'feature/both', change: 'none' },
  { image: 'web', branch: 'feature/both', change: 'app' },
];

function describeCombo(combo: Combo, body: () => void): void {
  const title = `${combo.recipe} on ${combo.engine}`;
  if (started.has(combo.engine)) describe(title, body);
  else if (required) test(title, () => { throw new Error(`engine ${combo.engine} did not start (REQUIRE_ENGINES=1)`); });
  else describe.skip(`${title} (engine ${combo.engine} not started)`, body);
}

for (const combo of STRATEGY_COMBOS) {
  describeCombo(combo, () => {
    test('two images, one cache repository: the second image reuses the base stage the first built; executed == ideal on every build', async () => {
      if (!engines.has(combo.engine)) engines.set(combo.engine, new Engine(combo.engine, vars));
      const engine = engines.get(combo.engine)!;
      const webRepos = await freshRepos(vars, combo, 'images');
      const apiApp = webRepos.app.replace(/-app$/, '-api-app');
      await createRepository(vars, apiApp.slice(vars.CIB_REGISTRY.length + 1), 'IMMUTABLE');
      const repos: Record<'web' | 'api', Repos> = { web: webRepos, api: { ...webRepos, app: apiApp } };
      const projects = { web: new Project(vars.CIB_BASE_IMAGE, WEB), api: new Project(vars.CIB_BASE_IMAGE, API) };
      // Keys built per branch, by any image: the refs of both images are read.
      const built = new Map<string, Set<string>>();
      const results: BuildResult[] = [];
      try {
        for (const [i, b] of BUILDS.entries()) {
          const project = projects[b.image];
          if (b.change === 'app') project.app = `app-v${i + 1}`;
          if (b.change === 'deps') project.deps = `deps-v${i + 1}`;
          const available = new Set([...(built.get(b.branch) ?? []), ...(built.get('main') ?? [])]);
          const r = await runBuild({
            combo, engine, project, repos: repos[b.image], branch: b.branch, tag: `b${i + 1}`, available, control: vars.CIB_REGISTRY_CONTROL,
            env: { CIB_IMAGE_NAME: b.image, CIB_CACHE_FROM_IMAGES: b.image === 'web' ? 'api' : 'web' },
          });
          const keys = built.get(b.branch) ?? new Set<string>();
          for (const k of project.stepKeys().values()) keys.add(k);
          built.set(b.branch, keys);
          results.push(r);
        }
      } finally {
        projects.web.remove();
        projects.api.remove();
      }
      const lines = results.map((r, i) => `build ${i + 1} (${BUILDS[i].image}@${BUILDS[i].branch}): executed [${r.executed}] ideal [${r.ideal}]`);
      const why = results.flatMap((r, i) => (r.executed.join() === r.ideal.join() ? [] : [`build ${i + 1}:`,
        ...r.log.split('\n').filter(l => /\[cached-build\]|CACHED|importing|pulling|ERROR|error/.test(l))]));
      expect({ lines, why }).toEqual({ lines: results.map((r, i) => `build ${i + 1} (${BUILDS[i].image}@${BUILDS[i].branch}): executed [${r.ideal}] ideal [${r.ideal}]`), why: [] });
      // The proof of cross-image reuse: api's first build ran only its own steps, the base came from web's cache.
      expect(results[1].ideal).toEqual(['a1', 'a2', 'a3', 'a4']);
      // Each image wrote refs of its own name only, and read the sibling's (registry and inline; buildah's refs are step tags).
      if (combo.recipe !== 'buildah') {
        for (const [i, r] of results.entries()) {
          const { image } = BUILDS[i];
          const written = r.exports.CACHE_REF_WRITTEN.split(',').filter(Boolean);
          expect(written.every(ref => ref.startsWith(`${image}--`))).toBe(true);
        }
        expect(results[1].exports.CACHE_REFS_READ.split(',')).toEqual(expect.arrayContaining(['api--main', 'web--main']));
        expect(results[4].exports.CACHE_REFS_READ.split(',')[0]).toMatch(/^api--feature-both-[0-9a-f]{8}$/);
      }
      // Every build pushed its app image and exported its digest.
      for (const [i, r] of results.entries()) {
        expect({ build: i + 1, digest: r.exports.IMAGE_DIGEST }).toEqual({ build: i + 1, digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
      }
    });
  });
}
