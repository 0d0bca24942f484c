/**
 * The check across CI's lanes (test/integration/lanes.sh), once every lane is done: what one lane cannot compare alone.
 *
 * - Every strategy on every engine pushed the same runtime configuration of the multi-stage image (engines.test.ts compares
 *   its own lane's; here all of them).
 * - The fault suite ran every case on every strategy × engine exactly once, over the lanes and the registry outages run
 *   alone: no case lost between lanes. Prints the suite's report over all of them (`fault-suite: F faults, H held, L lost`).
 *
 * Usage: CIB_RESULTS_DIR=DIR ts-node --transpile-only test/integration/cross-lane.ts; exits 1 unless both hold.
 */
import * as fs from 'fs';
import * as path from 'path';
import { isDeepStrictEqual } from 'util';
import { CASES, Outcome, printReport } from './fault-cases';
import { comboName, STRATEGY_COMBOS } from './harness';

function read(dir: string, prefix: string): Array<{ file: string; value: unknown }> {
  return fs.readdirSync(dir).filter(f => f.startsWith(prefix) && f.endsWith('.json')).sort()
    .map(file => ({ file, value: JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as unknown }));
}

function main(): number {
  const dir = process.env.CIB_RESULTS_DIR;
  if (!dir || !fs.existsSync(dir)) throw new Error(`CIB_RESULTS_DIR: '${dir ?? ''}' is not a directory`);
  const problems: string[] = [];
  const combos = STRATEGY_COMBOS.map(comboName);

  // The pushed configurations, one file a lane.
  const configs = new Map<string, unknown>();
  for (const { file, value } of read(dir, 'pushed-configs-')) {
    for (const [combo, config] of Object.entries(value as Record<string, unknown>)) {
      if (configs.has(combo)) problems.push(`${combo}'s pushed configuration comes from two lanes (${file})`);
      configs.set(combo, config);
    }
  }
  const missing = combos.filter(c => !configs.has(c));
  if (missing.length > 0) problems.push(`no pushed configuration from ${missing.join(', ')} (its lane's engine suite did not get to it)`);
  const [first, ...rest] = [...configs.entries()];
  const different = rest.filter(([, config]) => !isDeepStrictEqual(config, first[1]));
  for (const [combo, config] of different) problems.push(`${combo} pushed ${JSON.stringify(config)}; ${first[0]} pushed ${JSON.stringify(first[1])}`);
  console.log(`cross-lane: pushed configurations of ${[...configs.keys()].join(', ')}: ${different.length === 0 ? 'the same' : 'DIFFERENT'}`);

  // The fault suite's outcomes, from every lane and the outage run.
  const outcomes = read(dir, 'faults-').flatMap(({ value }) => value as Outcome[]);
  for (const combo of combos) {
    for (const c of CASES) {
      const n = outcomes.filter(o => comboName(o.combo) === combo && o.phase === c.phase && o.label === c.label).length;
      if (n !== 1) problems.push(`fault suite: ${combo} ${c.phase}: ${c.label} ran ${n} times, not once`);
    }
  }
  // In the README's order: a strategy × engine a column, as STRATEGY_COMBOS lists them.
  const order = (o: Outcome): number => combos.indexOf(comboName(o.combo)) * CASES.length
    + CASES.findIndex(c => c.phase === o.phase && c.label === o.label);
  console.log('');
  const ok = printReport([...outcomes].sort((a, b) => order(a) - order(b)), 'fault-injection suite, every lane and the outages run alone');
  for (const p of problems) console.log(`cross-lane: ${p}`);
  return ok && problems.length === 0 ? 0 : 1;
}

process.exitCode = main();
