/**
 * Multi-platform images, one builder: `CIB_PLATFORM=linux/amd64,linux/386` builds both platforms in one BuildKit build
 * (registry strategy, docker 26 on the containerd image store) FROM the engines' two-platform base (an index of Debian 12's
 * busybox-static for amd64 and for i386: i386 binaries run natively on an x86_64 kernel with IA32 emulation, so both platforms
 * really run; on a kernel without it, the engines give linux/386's variant the x86-64 busybox, which BuildKit runs natively
 * as it finds no emulator: the builds, refs, caches and index under test are the same, `CIB_MULTI_BASE_386` says which ran).
 *
 * Every build runs on a wiped builder. The Dockerfile copies a per-architecture dependency file
 * (`deps-${TARGETARCH}.txt`), so a dependency change can touch one platform's path only. What a perfect cache would skip is
 * computed per platform (a step's key chains its platform's base, its line and its input); executed must equal that
 * ideal for each platform on every build, and the marker each RUN step prints must agree, per platform. Each build pushes
 * one index with both platforms under its tag (one PUT per tag on the immutable app repository), exports the index's
 * digest, names the index in imagedefinitions.json and imageDetail.json, counts steps per platform in its report, and
 * exports cache only when a step executed.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Combo, Engine, freshEngine, frontEvents, inLane, loadEngines, tagDigest } from './harness';
import {
  ImageManifest, indexPlatforms, manifest, PLATFORM_BUILDS as BUILDS, PLATFORMS, runPlatformsScenario, STEPS, variant386,
} from './platforms';

const vars = loadEngines();
const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/).filter(Boolean));
const required = process.env.REQUIRE_ENGINES === '1';

const combo: Combo = { recipe: 'registry', engine: 'd26' };
const title = `registry on d26, ${PLATFORMS.join(' + ')}${variant386()} in one build`;
const ready = started.has('d26') && !!vars.CIB_MULTI_BASE_IMAGE;
if (!inLane(combo.engine)) {
  describe.skip(`${title} (in the other CI lane)`, () => { test('skipped', () => undefined); });
} else if (ready) {
  let engine: Engine | undefined;
  afterAll(() => engine?.dispose());
  describe(title, () => {
    // A fresh docker 26, as a CodeBuild host is (freshEngine): the native test before builds the same steps on it.
    beforeEach(() => freshEngine(combo.engine));
    test('app change, one platform\'s deps change, both, no-op, new branch: executed == ideal per platform on every build', async () => {
      engine = new Engine(combo.engine, vars);
      const { repos, results } = await runPlatformsScenario(combo, engine);
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
