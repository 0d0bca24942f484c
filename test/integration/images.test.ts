/**
 * Several images share one cache repository (a CachedImageBuildGroup): two Dockerfiles with a common base stage, each
 * image with its own (immutable) app repository, both writing `<image>--<branch>` refs to one cache repository and reading
 * each other's. Every build runs on a wiped builder; what a perfect cache would skip is computed over both images: a step
 * is cached when either image built the same step (same parent chain, same line, same input) on the build's branch or
 * the default branch. Executed must equal that ideal on every build, for every strategy on every engine.
 */
import { Combo, Engine, EngineName, IMAGE_BUILDS as BUILDS, inLane, loadEngines, runImagesScenario, STRATEGY_COMBOS } from './harness';

const vars = loadEngines();
const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/).filter(Boolean));
const required = process.env.REQUIRE_ENGINES === '1';
const engines = new Map<EngineName, Engine>();
afterAll(() => engines.forEach(e => e.dispose()));

function describeCombo(combo: Combo, body: () => void): void {
  const title = `${combo.recipe} on ${combo.engine}`;
  if (!inLane(combo.engine)) describe.skip(`${title} (in the other CI lane)`, body);
  else if (started.has(combo.engine)) describe(title, body);
  else if (required) test(title, () => { throw new Error(`engine ${combo.engine} did not start (REQUIRE_ENGINES=1)`); });
  else describe.skip(`${title} (engine ${combo.engine} not started)`, body);
}

for (const combo of STRATEGY_COMBOS) {
  describeCombo(combo, () => {
    test('two images, one cache repository: the second image reuses the base stage the first built; executed == ideal on every build', async () => {
      if (!engines.has(combo.engine)) engines.set(combo.engine, new Engine(combo.engine, vars));
      const engine = engines.get(combo.engine)!;
      const { builds: results } = await runImagesScenario(combo, engine, vars);
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
