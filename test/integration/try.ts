// Manual runner: ts-node test/integration/try.ts RECIPE ENGINE SCENARIO
import { Combo, Engine, EngineName, loadEngines, RecipeName, runScenario, SCENARIOS } from './harness';

async function main(): Promise<void> {
  const [recipe, engineName, scenarioName] = process.argv.slice(2);
  const vars = loadEngines();
  const combo: Combo = { recipe: recipe as RecipeName, engine: engineName as EngineName };
  const engine = new Engine(combo.engine, vars);
  const scenario = SCENARIOS.find(s => s.name === scenarioName)!;
  try {
    for (let k = 0; k < Number(process.env.REPEAT ?? 1); k++) {
      const run = await runScenario(combo, scenario, engine, vars, {
        floor: process.env.FLOOR === '1',
        onBuild: (i, r) => {
          console.log(`build ${i + 1}: executed [${r.executed}] ideal [${r.ideal}] ${r.seconds.toFixed(1)}s cache+${r.cacheBytesAdded}B `
          + `reported ${r.report?.cacheBytesPushed} ${r.report?.verdict}`);
          if (process.env.VERBOSE === '1' || r.executed.join() !== r.ideal.join()) console.log(r.buildLog);
        },
      });
      if (run.floorSeconds) console.log(`floor ${run.floorSeconds.toFixed(1)}s`);
    }
  } finally {
    engine.dispose();
  }
}
main().catch(e => { console.error(e); process.exit(1); });
