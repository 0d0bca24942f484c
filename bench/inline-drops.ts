/**
 * `npm run repro:inline-drops`: looks for the inline strategy's miss (issue 9; README, "The inline miss"). The real-workload service, four
 * source changes on main and two on a new branch, with the inline strategy on docker 20.10 and docker 26; after the series,
 * each cache ref's own layers (Dockerfile steps) that have no result in its inline cache (`moby.buildkit.cache.v0`). A layer
 * without a result cannot be reused: when no other ref carries it, the next build re-runs its step. Not part of CI: the miss was
 * seen only on a docker that kept BuildKit state from earlier builds, and not on every series there.
 * REPRO_FRESH=1 restarts the engine with empty data roots before every build (a CodeBuild host starts fresh), instead of
 * only wiping images and build cache (docker's BuildKit keeps its cache keys across `docker builder prune`).
 * REPRO_SCENARIO=real runs bench:real's six builds instead (cold, source change, dependency added, no change, source change,
 * new branch).
 */
import { Engine, EngineName, loadEngines, MANIFEST_ACCEPT, OBSERVE, runScenario, Scenario } from '../test/integration/harness';
import { nodeBaseImage, REAL, REAL_SCENARIO } from './real';

const SERIES: Scenario = {
  name: 'X', title: 'four source changes on main, two on a new branch', layout: REAL,
  builds: [
    { branch: 'main', change: 'app' }, { branch: 'main', change: 'app' }, { branch: 'main', change: 'app' }, { branch: 'main', change: 'app' },
    { branch: 'feature/x', change: 'app' }, { branch: 'feature/x', change: 'app' },
  ],
};

/**
 * A ref's own layers (made by a Dockerfile step, not the base image's) without a result in its inline cache, and results
 * that are chains of other layers; undefined when the ref has no inline cache. A result is a top layer
 * (`"layers": [{"layer": i}]`), or, since BuildKit 0.10, a chain (`"chains": [{"layers": [...]}]`), which BuildKit writes when
 * the result's blobs are not the image's own layers in order: a chain 0..i is the result of layer i, any other is listed.
 */
async function layersWithoutResult(registry: string, repo: string, tag: string)
  : Promise<{ own: number[]; missing: number[]; otherChains: number[][] } | undefined> {
  const manifest = await (await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, { headers: { Accept: MANIFEST_ACCEPT, ...OBSERVE } })).json() as {
    config: { digest: string };
  };
  const config = await (await fetch(`http://${registry}/v2/${repo}/blobs/${manifest.config.digest}`, { headers: OBSERVE })).json() as {
    'history'?: Array<{ empty_layer?: boolean; comment?: string }>; 'moby.buildkit.cache.v0'?: string;
  };
  const inline = config['moby.buildkit.cache.v0'];
  if (!inline) return undefined;
  const own: number[] = [];
  (config.history ?? []).filter(h => !h.empty_layer).forEach((h, i) => { if (h.comment === 'buildkit.dockerfile.v0') own.push(i); });
  const parsed = JSON.parse(Buffer.from(inline, 'base64').toString('utf8'));
  const records: Array<{ layers?: Array<{ layer: number }> | null; chains?: Array<{ layers: number[] | null }> | null }> =
    Array.isArray(parsed) ? parsed : parsed.records ?? [];
  const withResult = new Set<number>();
  const otherChains: number[][] = [];
  for (const r of records) {
    for (const l of r.layers ?? []) withResult.add(l.layer);
    for (const c of r.chains ?? []) {
      const ls = c.layers ?? [];
      if (ls.length > 0 && ls.every((l, i) => l === i)) withResult.add(ls.length - 1);
      else otherChains.push(ls);
    }
  }
  return { own, missing: own.filter(i => !withResult.has(i)), otherChains };
}

async function main(): Promise<void> {
  const vars = loadEngines();
  const baseImage = nodeBaseImage();
  const SCENARIO = process.env.REPRO_SCENARIO === 'real' ? REAL_SCENARIO : SERIES;
  let misses = 0;
  const fresh = process.env.REPRO_FRESH === '1';
  for (const engine of (process.env.REPRO_ENGINES ?? 'd20,d26').split(',') as EngineName[]) {
    const e = new Engine(engine, vars);
    try {
      const run = await runScenario({ recipe: 'inline', engine }, SCENARIO, e, vars, {
        baseImage, freshHost: fresh,
        onBuild: (i, r) => {
          const ok = r.executed.join() === r.ideal.join();
          if (!ok) misses++;
          console.log(`inline@${engine} build ${i + 1} (${SCENARIO.builds[i].branch}): executed [${r.executed}] ideal [${r.ideal}]${ok ? '' : ' MISS'}`);
        },
      });
      const repo = run.repos.cache.slice(run.repos.registry.length + 1);
      const list = await (await fetch(`http://${run.repos.registry}/v2/${repo}/tags/list`, { headers: OBSERVE })).json() as { tags?: string[] };
      const tags = list.tags ?? [];
      for (const tag of tags.sort()) {
        const r = await layersWithoutResult(run.repos.registry, repo, tag);
        console.log(`  ref ${tag}: ${r ? `own layers [${r.own}], without a result: [${r.missing}]`
          + `${r.otherChains.length ? `, other chains ${JSON.stringify(r.otherChains)}` : ''}` : 'no inline cache'}`);
      }
    } finally {
      e.dispose();
    }
  }
  console.log(`inline-drops${fresh ? ' (engine restarted before every build)' : ''}: ${misses} builds re-ran a step a perfect cache would have skipped`);
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
