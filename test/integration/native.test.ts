/**
 * Multi-platform images, native path (CachedMultiPlatformImageBuild): each build of the scenario is one build per platform —
 * `CIB_PLATFORM=linux/amd64` and `CIB_PLATFORM=linux/386`, each on a wiped builder as on a CodeBuild host of its own, each with
 * its own cache refs (`<os>-<arch>--<branch>`), pushing `<tag>--<os>-<arch>` — then the merge step, which writes the index
 * `<tag>` with registry requests only. linux/386 runs natively on an x86_64 kernel with IA32 emulation, so both platforms
 * really build (on a kernel without it, linux/386's base variant carries the x86-64 busybox: see engines.sh busybox_for_386,
 * `CIB_MULTI_BASE_386`); ARM cannot run here (the ARM project is covered by template tests).
 *
 * executed must equal the ideal for each platform on every build (a step's key chains its platform's base, its line and its
 * input), and the markers must agree. Through the ECR-behaving front: one accepted PUT per tag (each platform's image, then the
 * index), no refusal; the index holds exactly the platform images the builds pushed, each built on its platform's base; the
 * merge exports the index's digest and names it in imagedefinitions.json / imageDetail.json; a re-run of the merge reuses it.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { StrategyName } from '../../lib/build-script/engine';
import { Combo, Engine, EngineName, freshEngine, frontEvents, inLane, loadEngines, tagDigest } from './harness';
import {
  indexPlatforms, manifest, PLATFORM_BUILDS as BUILDS, PLATFORMS, platformSlug, runMerge, runNativeScenario, STEPS, variant386,
} from './platforms';

const vars = loadEngines();

/** An image's config blob (architecture, rootfs.diff_ids), read from the registry. */
async function imageConfigOf(repository: string, digest: string): Promise<{ architecture: string; rootfs: { diff_ids: string[] } }> {
  const m = await manifest<{ config: { digest: string } }>(repository, digest);
  const [registry, ...rest] = repository.split('/');
  const res = await fetch(`http://${registry}/v2/${rest.join('/')}/blobs/${m.config.digest}`);
  if (!res.ok) throw new Error(`${repository}@${m.config.digest}: ${res.status}`);
  return (await res.json()) as { architecture: string; rootfs: { diff_ids: string[] } };
}
const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/).filter(Boolean));
const required = process.env.REQUIRE_ENGINES === '1';

const COMBOS: Combo[] = [{ recipe: 'registry', engine: 'd26' }, { recipe: 'inline', engine: 'd20' }, { recipe: 'buildah', engine: 'buildah' }];
const engines: Engine[] = [];
afterAll(() => { for (const e of engines) e.dispose(); });

for (const combo of COMBOS) {
  const title = `native ${PLATFORMS.join(' + ')}${variant386()}: ${combo.recipe} on ${combo.engine}, one build per platform, then the merge`;
  const ready = started.has(combo.engine as EngineName) && !!vars.CIB_MULTI_BASE_IMAGE;
  if (!inLane(combo.engine)) {
    describe.skip(`${title} (in the other CI lane)`, () => { test('skipped', () => undefined); });
    continue;
  }
  if (!ready) {
    if (required) test(title, () => { throw new Error(`engine ${combo.engine} or the two-platform base did not start (REQUIRE_ENGINES=1)`); });
    else describe.skip(`${title} (not started)`, () => { test('skipped', () => undefined); });
    continue;
  }
  describe(title, () => {
    // A fresh docker for each scenario, as a CodeBuild host is (freshEngine): the tests before build the same steps.
    beforeEach(() => freshEngine(combo.engine));
    test('app change, one platform\'s deps change, both, no-op, new branch: executed == ideal per platform; one index a build', async () => {
      const engine = new Engine(combo.engine, vars);
      engines.push(engine);
      const { repos, results } = await runNativeScenario(combo, engine);
      const table = (f: (x: typeof results[number], p: string) => string[]) => results.flatMap((x, i) => PLATFORMS.map(p =>
        `build ${i + 1} (${BUILDS[i].branch}) ${p}: ${f(x, p).join(',') || '-'}`));
      const executed = table((x, p) => x.platforms.get(p)!.executed);
      const ideal = table((x, p) => x.ideal.get(p)!);
      const markers = table((x, p) => x.platforms.get(p)!.markers.filter(id => id !== 'p3' && id !== 'p5'));
      const idealRuns = table((x, p) => x.ideal.get(p)!.filter(id => id !== 'p3' && id !== 'p5'));
      for (const line of executed) process.stdout.write(`${combo.recipe}@${combo.engine} ${line}\n`);
      expect(executed).toEqual(ideal);
      expect(markers).toEqual(idealRuns);
      // The scenario means something: a 386-only deps change is nothing to amd64's build, and its deps path to 386's.
      expect(results[0].ideal.get('linux/386')).toEqual(STEPS.map(s => s.id));
      expect(results[2].ideal.get('linux/amd64')).toEqual([]);
      expect(results[2].ideal.get('linux/386')).toEqual(['p3', 'p4', 'p5', 'p6']);
      expect(results[4].ideal.get('linux/amd64')).toEqual([]);

      const baseRepo = vars.CIB_MULTI_BASE_IMAGE.replace(/:[^:/]+$/, '');
      const base = await indexPlatforms(baseRepo, vars.CIB_MULTI_BASE_IMAGE.replace(/^.*:/, ''));
      const events = await frontEvents(vars, repos.app);
      const stepTags = new Map<string, Set<string>>();
      for (const [i, { platforms, merge, artifacts }] of results.entries()) {
        const tag = `b${i + 1}`;
        // One accepted PUT of each platform's tag and of the index's tag.
        for (const t of [...PLATFORMS.map(p => `${tag}--${platformSlug(p)}`), tag]) {
          const puts = events.filter(e => e.method === 'PUT' && e.reference === t);
          expect({ t, puts: puts.map(e => `${e.status}${e.refused ? ` ${e.refused}` : ''}`) }).toEqual({ t, puts: ['201'] });
        }
        // The merge's digest is the index's; the index names exactly each platform's pushed image, built on that platform's base.
        expect({ tag, digest: merge.exports.IMAGE_DIGEST }).toEqual({ tag, digest: await tagDigest(repos.app, tag) });
        const index = await indexPlatforms(repos.app, merge.exports.IMAGE_DIGEST);
        expect({ tag, platforms: [...index.keys()].sort() }).toEqual({ tag, platforms: [...PLATFORMS].sort() });
        for (const p of PLATFORMS) {
          const pushed = await tagDigest(repos.app, `${tag}--${platformSlug(p)}`);
          expect({ tag, p, digest: index.get(p) }).toEqual({ tag, p, digest: pushed });
          expect({ tag, p, digest: platforms.get(p)!.r.exports.IMAGE_DIGEST }).toEqual({ tag, p, digest: pushed });
          // Built on its platform's base: the image's architecture, and its first layer's content (diff ID: docker 20.10 compresses
          // the layers it pushes anew, so the compressed digests may differ).
          const config = await imageConfigOf(repos.app, pushed!);
          const baseConfig = await imageConfigOf(baseRepo, base.get(p)!);
          expect({ tag, p, arch: config.architecture, base: config.rootfs.diff_ids[0] })
            .toEqual({ tag, p, arch: p.split('/')[1], base: baseConfig.rootfs.diff_ids[0] });
          // Each platform's cache is its own: it read its own refs, and wrote its ref only when one of its steps executed. buildah's
          // refs are its content-addressed step tags (keyed by the platform's base): those a platform reads are those it wrote.
          const { r } = platforms.get(p)!;
          const slug = platformSlug(p);
          const ran = results[i].ideal.get(p)!.length > 0;
          const read = r.exports.CACHE_REFS_READ.split(',').filter(Boolean);
          if (combo.recipe === 'buildah') {
            const mine = stepTags.get(p) ?? new Set<string>();
            expect({ tag, p, foreign: read.filter(ref => !mine.has(ref)) }).toEqual({ tag, p, foreign: [] });
            const written = r.exports.CACHE_REF_WRITTEN.split(',').filter(Boolean);
            const hex = written.every(ref => /^[0-9a-f]{64}$/.test(ref));
            expect({ tag, p, wrote: written.length > 0, hex }).toEqual({ tag, p, wrote: ran, hex: true });
            stepTags.set(p, new Set([...mine, ...written]));
          } else {
            expect({ tag, p, foreign: read.filter(ref => !ref.startsWith(`${slug}--`)) }).toEqual({ tag, p, foreign: [] });
            const written = ran ? expect.stringMatching(new RegExp(`^${slug}--`)) : '';
            expect({ tag, p, written: r.exports.CACHE_REF_WRITTEN }).toEqual({ tag, p, written });
          }
        }
        const definitions = JSON.parse(fs.readFileSync(path.join(artifacts, 'imagedefinitions.json'), 'utf8')) as Array<{ imageUri: string }>;
        const detail = JSON.parse(fs.readFileSync(path.join(artifacts, 'imageDetail.json'), 'utf8')) as { ImageURI: string };
        expect(definitions[0].imageUri).toBe(`${repos.app}:${tag}`);
        expect(detail.ImageURI).toBe(`${repos.app}@${merge.exports.IMAGE_DIGEST}`);
        expect(merge.report).toMatchObject({ merge: true, reused: false, digest: merge.exports.IMAGE_DIGEST });
        fs.rmSync(artifacts, { recursive: true, force: true });
      }
      expect(events.filter(e => e.refused)).toEqual([]);
      // buildah: the platforms' step tags never meet (each key chains its platform's base).
      if (combo.recipe === 'buildah') {
        const [a, b] = PLATFORMS.map(p => [...(stepTags.get(p) ?? [])]);
        expect({ a: a.length > 0, b: b.length > 0, shared: a.filter(t => b.includes(t)) }).toEqual({ a: true, b: true, shared: [] });
      }

      // A re-run of the last merge (a pipeline's "Release change") finds the index and writes nothing.
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-artifacts-'));
      const again = runMerge(combo.recipe as StrategyName, engine, repos, `b${results.length}`, out);
      fs.rmSync(out, { recursive: true, force: true });
      expect(again.exports).toMatchObject({ IMAGE_REUSED: 'true', IMAGE_DIGEST: results[results.length - 1].merge.exports.IMAGE_DIGEST });
      expect((await frontEvents(vars, repos.app)).length).toBe(events.length);
    });
  });
}
