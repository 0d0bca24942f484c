// Captures real engine logs as parser fixtures: `npx ts-node test/integration/capture-logs.ts` (engines up).
import * as fs from 'fs';
import * as path from 'path';
import { Combo, Engine, freshRepos, loadEngines, Project, runBuild } from './harness';

async function main(): Promise<void> {
  const vars = loadEngines();
  const out = path.join(__dirname, '..', 'build-script', 'fixtures', 'logs');
  const combos: Combo[] = [{ recipe: 'registry', engine: 'd26' }, { recipe: 'inline', engine: 'd20' }, { recipe: 'buildah', engine: 'buildah' }];
  for (const combo of combos) {
    const engine = new Engine(combo.engine, vars);
    const project = new Project(vars.CIB_BASE_IMAGE);
    const repos = await freshRepos(vars, combo, 'logs');
    try {
      // cold (all executed), deps change (mixed, with pulled layers), no change (all cached)
      const cold = await runBuild({ combo, engine, project, repos, branch: 'main', tag: 'l1', available: new Set() });
      project.deps = 'deps-v2';
      const mixed = await runBuild({ combo, engine, project, repos, branch: 'main', tag: 'l2', available: new Set() });
      const noop = await runBuild({ combo, engine, project, repos, branch: 'main', tag: 'l3', available: new Set() });
      for (const [name, r] of [['cold', cold], ['deps-changed', mixed], ['noop', noop]] as const) {
        const file = path.join(out, `real-${combo.recipe}-${combo.engine}-${name}.log`);
        fs.writeFileSync(file, r.buildLog);
        console.log(`${file}: executed [${r.executed}]`);
      }
    } finally {
      project.remove();
      engine.dispose();
    }
  }
}
main().catch(e => { console.error(e); process.exit(1); });
