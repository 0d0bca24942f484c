/**
 * `npm run test:faults`: the fault-injection suite. Every strategy on every engine builds through the ECR-behaving
 * registry front, which injects a fault into one phase of one build: the cache import (reads of the cache repository),
 * the app push (writes to the app repository) or the cache export (writes to the cache repository). The contract:
 *
 * - a cache fault never fails a build;
 * - an app push fault, or the whole registry down as the build starts, fails the build with the engine's error, unless
 *   the engine's own retries got the image through;
 * - a fault in the skip of an unchanged build (the record's reads, the retag's write) never fails a build: it builds instead;
 * - nothing half-written is taken for a good image or a good cache: a build that succeeds pushed an image that pulls
 *   and runs with the content it was built from, at the digest it exported; the next build (no fault) succeeds, runs
 *   every step its inputs need (no stale hit) and no more than without the faulted build's cache, and pushes a good
 *   image too.
 *
 * A case is *held* when the outcome is one the contract allows; *lost* when a pushed image, or the cache the next build
 * reads, is wrong or unreadable. Prints a Markdown table and `fault-suite: F faults, H held, L lost`; exits 1 unless
 * every case held and none was lost.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runCleanup } from '../../lambda/cache-cleanup';
import { BuildScript } from '../../lib/build-script/build-script';
import type { StrategyName } from '../../lib/build-script/engine';
import { resolvePolicy } from '../../lambda/cache-cleanup/config';
import type { CleanupReport } from '../../lambda/cache-cleanup/report';
import { FakeBuild, FakeCodeBuild } from '../fakes/codebuild';
import { ecrError, FakeEcr } from '../fakes/ecr';
import { LedgerImage, OBSERVER_HEADER } from '../fakes/registry-front';
import { casesOf, FaultCase, isOutage, Outcome, printReport } from './fault-cases';
import {
  BuildResult, Combo, comboName, Engine, EngineName, freshRepos, inLane, laneEngines, loadEngines, Project, Repos, runBuild, SINGLE, STRATEGY_COMBOS,
  tagDigest, writeLaneResult,
} from './harness';

async function control(vars: Record<string, string>, method: string, what: string, body?: unknown): Promise<void> {
  const res = await fetch(`${vars.CIB_REGISTRY_CONTROL}/${what}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) throw new Error(`front ${method} ${what}: ${res.status}`);
}

/**
 * The docker that pulls and runs the images a combo pushed: its own engine's, or for buildah a docker of its lane (in CI's
 * lanes a docker of the other lane builds while this one runs; its images are not this lane's to prune).
 */
function verifierOf(combo: Combo): EngineName {
  if (combo.engine === 'd20' || combo.engine === 'd26') return combo.engine;
  const lane = laneEngines();
  if (!lane || lane.has('d26')) return 'd26';
  if (lane.has('d20')) return 'd20';
  throw new Error(`lane ${[...lane].join(' ')}: no docker to run ${combo.recipe}@${combo.engine}'s images on`);
}

/** Pulls the digest and runs it: the content the build was made from, or what went wrong. */
function runImage(vars: Record<string, string>, combo: Combo, ref: string): { ok: boolean; out: string } {
  const verifier = new Engine(verifierOf(combo), vars);
  try {
    // From an empty store: the engine that built the image may still hold its layers, and a docker that has the image
    // does not pull it (`--pull always` then checks the manifest only): a layer missing from the registry would pass.
    verifier.wipe();
    const r = spawnSync('bash', ['-c', `docker run --rm --network host --pull always "${ref}" cat /app/built`], {
      env: verifier.env(), encoding: 'utf8', timeout: 120_000,
    });
    return { ok: r.status === 0, out: r.status === 0 ? r.stdout.trim() : `${r.stdout}${r.stderr}`.trim() };
  } finally {
    verifier.dispose();
  }
}

/** Every build that succeeded must have pushed a good image: the tag at the exported digest, and it runs. */
async function integrity(
  vars: Record<string, string>, combo: Combo, repos: Repos, tag: string, r: BuildResult, app: string,
): Promise<string | undefined> {
  const digest = r.exports.IMAGE_DIGEST;
  if (!/^sha256:[0-9a-f]{64}$/.test(digest ?? '')) return `no digest exported (${digest})`;
  const remote = await tagDigest(repos.app, tag);
  if (remote !== digest) return `the tag points to ${remote ?? 'nothing'}, the build exported ${digest}`;
  const ran = runImage(vars, combo, `${repos.app}@${digest}`);
  if (!ran.ok || ran.out.split('\n').pop() !== app) return `the image does not run as built: ${ran.out.slice(-300)}`;
  return undefined;
}

const CLEANUP_PROJECT = 'faults';

interface CleanupRun {
  readonly report?: CleanupReport;
  readonly error?: string;
  /** Digests the cleanup deleted (and the suite then deleted from the registry). */
  readonly deleted: string[];
}

/**
 * One cache cleanup run (the function's runCleanup) on the cache repository as the front describes it, with the suite's
 * build history plus the build now running; what it deletes is then deleted from the registry, through the front.
 */
async function cleanupRun(vars: Record<string, string>, repos: Repos, history: readonly FakeBuild[], mode: FaultCase['cleanup']): Promise<CleanupRun> {
  const name = repos.cache.slice(vars.CIB_REGISTRY.length + 1);
  const res = await fetch(`${vars.CIB_REGISTRY_CONTROL}/images?repository=${encodeURIComponent(name)}`);
  if (!res.ok) throw new Error(`front images ${name}: ${res.status}`);
  const ledger = await res.json() as LedgerImage[];
  const ecr = new FakeEcr({
    repositoryName: name,
    images: ledger.map(i => ({
      digest: i.digest, tags: i.tags, sizeBytes: i.sizeBytes, pushedAt: i.pushedAt, lastPulledAt: i.lastPulledAt,
      mediaType: i.mediaType, children: i.children,
    })),
  });
  if (mode === 'throttled') ecr.failCall('DescribeImages', ecrError('ThrottlingException', 'Rate exceeded'));
  const running: FakeBuild = { startTime: Date.now(), environmentVariables: [{ name: 'CACHE_BRANCH', value: 'main' }] };
  const codebuild = new FakeCodeBuild({ projectName: CLEANUP_PROJECT, builds: [...history, running] });
  let report: CleanupReport | undefined;
  let error: string | undefined;
  try {
    report = await runCleanup({
      repositoryName: name,
      projectName: CLEANUP_PROJECT,
      dryRun: false,
      metricsNamespace: 'CachedImageBuild',
      policy: resolvePolicy({ defaultBranchTag: 'release', idleTimeoutSeconds: 1, untaggedGracePeriodSeconds: 0, allowLargeDeletes: true }),
    }, { ecr: ecr.client(), codebuild: codebuild.client(), now: Date.now, log: () => undefined });
  } catch (e) {
    error = (e as Error).message;
  }
  const left = new Set(ecr.images().map(i => i.digest));
  const deleted = ledger.filter(i => !left.has(i.digest)).map(i => i.digest);
  for (const digest of deleted) {
    const del = await fetch(`http://${vars.CIB_REGISTRY}/v2/${name}/manifests/${digest}`, { method: 'DELETE', headers: { [OBSERVER_HEADER]: '1' } });
    if (del.status !== 202) throw new Error(`registry DELETE ${name}@${digest}: ${del.status}`);
  }
  return { report, error, deleted };
}

async function cacheRequests(vars: Record<string, string>, repos: Repos): Promise<number> {
  const res = await fetch(`${vars.CIB_REGISTRY_CONTROL}/traffic?repository=${encodeURIComponent(repos.cache.slice(vars.CIB_REGISTRY.length + 1))}`);
  return ((await res.json()) as { requests?: number }).requests ?? 0;
}

/** Two builds of one branch at once, on one engine (no wipe between), through the script as two processes. */
function buildTwiceAtOnce(
  combo: Combo, engine: Engine, project: Project, repos: Repos, tags: [string, string],
): Array<{ status: number; out: string }> {
  // A directory of this call's own: CI's other lane runs the same case at about the same time, with the same tags.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-twice-'));
  const script = path.join(dir, 'build.sh');
  fs.writeFileSync(script, new BuildScript({ strategy: combo.recipe as StrategyName }).renderScript());
  const run = (tag: string): string => `APP_REPOSITORY_URI=${repos.app} CACHE_REPOSITORY_URI=${repos.cache} IMAGE_TAG=${tag} CACHE_BRANCH=main `
    + `CIB_NETWORK=host CIB_WORK_DIR=$(mktemp -d) bash ${script} > ${dir}/${tag}.log 2>&1; echo $? > ${dir}/${tag}.rc`;
  engine.wipe();
  try {
    spawnSync('bash', ['-c', `${run(tags[0])} & ${run(tags[1])} & wait`], { cwd: project.dir, env: engine.env(), encoding: 'utf8', timeout: 600_000 });
    return tags.map(t => ({
      status: Number(fs.readFileSync(path.join(dir, `${t}.rc`), 'utf8').trim()),
      out: fs.readFileSync(path.join(dir, `${t}.log`), 'utf8'),
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function runCombo(combo: Combo, vars: Record<string, string>, cases: readonly FaultCase[]): Promise<Outcome[]> {
  const engine = new Engine(combo.engine, vars);
  const project = new Project(vars.CIB_BASE_IMAGE, SINGLE);
  const repos = await freshRepos(vars, combo, 'faults');
  const outcomes: Outcome[] = [];
  const built = new Set<string>();
  let n = 0;
  const remember = (): void => {
    for (const k of project.stepKeys().values()) built.add(k);
  };
  // The CodeBuild history the cleanup cases read: every build of this run, as CodeBuild reports a finished build.
  const history: FakeBuild[] = [];
  const build = async (tag: string, mayFail = false, env?: Record<string, string>): Promise<BuildResult> => {
    const startTime = Date.now();
    const r = await runBuild({ combo, engine, project, repos, branch: 'main', tag, available: new Set(built), control: vars.CIB_REGISTRY_CONTROL, mayFail, env });
    history.push({
      startTime,
      endTime: Math.max(Date.now(), startTime + 1),
      buildStatus: r.status === 0 ? 'SUCCEEDED' : 'FAILED',
      environmentVariables: [{ name: 'CACHE_BRANCH', value: 'main' }],
      exportedEnvironmentVariables: Object.entries(r.exports).map(([name, value]) => ({ name, value })),
    });
    return r;
  };
  try {
    await build('prime');
    remember();
    for (const fault of cases) {
      const why: string[] = [];
      let buildCell = '';
      let integrityCell = '-';
      let held = true;
      let lost = false;
      project.app = `app-${combo.recipe}-${++n}`;
      project.write();
      const keysBefore = new Set(built);
      let faultedOk = false;
      // The faulted build's image: pulled at the digest it exported and run, it must hold the content it was built from.
      const checkImage = async (r: BuildResult): Promise<void> => {
        const broken = await integrity(vars, combo, repos, `f${n}`, r, project.app);
        integrityCell = broken ? 'BROKEN' : 'runs as built';
        if (broken) {
          lost = true;
          why.push(broken);
        }
      };
      if (fault.phase === 'two builds at once') {
        const appA = project.app;
        const results = buildTwiceAtOnce(combo, engine, project, repos, [`t${n}a`, `t${n}b`]);
        faultedOk = results.every(r => r.status === 0);
        buildCell = results.map(r => (r.status === 0 ? 'succeeded' : `failed (exit ${r.status})`)).join(', ');
        if (!faultedOk) {
          held = false;
          why.push(`a concurrent build failed: ${results.map(r => r.out.split('\n').filter(l => /ERROR/.test(l)).slice(-2).join(' ')).join(' | ')}`);
        }
        for (const t of [`t${n}a`, `t${n}b`]) {
          const digest = await tagDigest(repos.app, t);
          const ran = digest ? runImage(vars, combo, `${repos.app}@${digest}`) : { ok: false, out: 'no image' };
          if (!ran.ok || ran.out.split('\n').pop() !== appA) {
            lost = true;
            why.push(`${t}: ${ran.out.slice(-200)}`);
          }
        }
        integrityCell = lost ? 'BROKEN' : 'both run';
      } else if (fault.cleanup) {
        const keys = project.stepKeys();
        const mayRun = project.layout.steps.map(x => x.id).filter(id => !keysBefore.has(keys.get(id)!));
        let cleanup: Promise<CleanupRun>;
        let r: BuildResult;
        if (fault.cleanup === 'while it reads') {
          const before = await cacheRequests(vars, repos);
          let done = false;
          const running = build(`f${n}`, true).finally(() => {
            done = true;
          });
          // As soon as the build's first request reaches the cache repository.
          while (!done && await cacheRequests(vars, repos) === before) await new Promise(resolve => setTimeout(resolve, 20));
          cleanup = cleanupRun(vars, repos, history, fault.cleanup);
          r = await running;
        } else {
          cleanup = cleanupRun(vars, repos, history, fault.cleanup);
          await cleanup;
          r = await build(`f${n}`, true);
        }
        const c = await cleanup;
        faultedOk = r.status === 0;
        const kept = Object.entries(c.report?.keptByReason ?? {}).map(([k, v]) => `${v} ${k}`).join(', ');
        buildCell = `${faultedOk ? 'succeeded' : `failed (exit ${r.status})`}; cleanup ${c.error ? `failed: ${c.error.slice(0, 70)}` : `deleted ${c.deleted.length}, kept ${kept || 'nothing'}`}`;
        if (!faultedOk) {
          held = false;
          why.push(`the build failed beside a cleanup: ${r.log.split('\n').filter(l => /ERROR/.test(l)).slice(-2).join(' | ')}`);
        }
        const extra = r.executed.filter(id => !mayRun.includes(id));
        if (faultedOk && extra.length > 0) {
          held = false;
          why.push(`the cleanup took cache the running build needed: it ran ${extra} again`);
        }
        if (fault.cleanup === 'throttled' && !(c.error?.includes('cannot read repository') && c.deleted.length === 0)) {
          held = false;
          why.push(`an unreadable repository must stop the cleanup with an error and no deletion: ${c.error ?? 'no error'}, ${c.deleted.length} deleted`);
        }
        if (fault.cleanup !== 'throttled' && !c.report?.buildsRunning) {
          held = false;
          why.push(`the cleanup did not see the running build: ${c.error ?? JSON.stringify(c.report)}`);
        }
        if (faultedOk) await checkImage(r);
      } else {
        const target = fault.phase === 'app push' || fault.phase === 'retag' ? repos.app : repos.cache;
        const skip = fault.phase === 'retag' ? { CIB_SKIP_UNCHANGED: 'true' } : undefined;
        // The record the faulted build looks up: a build of the same inputs.
        if (skip) await build(`r${n}`, false, skip);
        const repository = target.slice(vars.CIB_REGISTRY.length + 1);
        await control(vars, 'POST', 'faults', { ...fault.rule, repository });
        let r: BuildResult;
        try {
          r = await build(`f${n}`, true, skip);
        } finally {
          // This repository's rules only: in CI's lanes another lane's fault may be armed on its own repositories.
          await control(vars, 'DELETE', `faults?repository=${encodeURIComponent(repository)}`);
        }
        faultedOk = r.status === 0;
        const errors = r.log.split('\n').filter(l => /ERROR|WARNING/.test(l));
        buildCell = faultedOk
          ? `succeeded${r.report?.reused ? ' (retagged)' : ''}${/cache export FAILED/.test(r.report?.verdict ?? '') ? ', cache export failed (warned)' : ''}`
          : `failed: ${(errors.filter(l => /ERROR/.test(l)).pop() ?? '').replace(/^\[cached-build\] /, '').slice(0, 90)}`;
        if (fault.phase === 'app push' || fault.phase === 'registry down') {
          // Either the engine's error, or a good image its retries got through.
          if (!faultedOk && !errors.some(l => /ERROR/.test(l))) {
            held = false;
            why.push('failed without saying why');
          }
        } else if (!faultedOk) {
          held = false;
          why.push(`a cache fault failed the build: ${errors.slice(-3).join(' | ')}`);
        }
        if (faultedOk) await checkImage(r);
      }
      // The next build, without a fault: a good image, and exactly the work a correct cache allows.
      const idealWith = new Set([...keysBefore, ...(faultedOk ? project.stepKeys().values() : [])]);
      project.app = `app-${combo.recipe}-${n}-next`;
      project.write();
      const keys = project.stepKeys();
      const ids = project.layout.steps.map(x => x.id);
      const mustRun = ids.filter(id => !idealWith.has(keys.get(id)!));
      const mayRun = ids.filter(id => !keysBefore.has(keys.get(id)!));
      let nextCell: string;
      try {
        const next = await build(`n${n}`);
        const stale = mustRun.filter(id => !next.executed.includes(id));
        const extra = next.executed.filter(id => !mayRun.includes(id));
        const broken = await integrity(vars, combo, repos, `n${n}`, next, project.app);
        nextCell = `${next.executed.length} steps run (${mustRun.length}–${mayRun.length} allowed)`;
        if (stale.length > 0 || broken) {
          lost = true;
          why.push(`next build: ${stale.length > 0 ? `skipped ${stale} (stale cache)` : ''} ${broken ?? ''}`);
          nextCell = `WRONG: ${nextCell}`;
        } else if (extra.length > 0) {
          held = false;
          why.push(`next build ran ${extra} beyond what no cache at all would need`);
        }
      } catch (e) {
        lost = true;
        why.push(`next build failed: ${(e as Error).message.slice(-400)}`);
        nextCell = 'FAILED';
      }
      remember();
      outcomes.push({
        combo, phase: fault.phase, label: fault.label, build: buildCell, integrity: integrityCell, next: nextCell, held: held && !lost, lost, why,
      });
      process.stderr.write(`[faults] ${combo.recipe}@${combo.engine} ${fault.phase}: ${fault.label}: ${buildCell}; ${integrityCell}; next ${nextCell}`
        + `${why.length ? ` — ${why.join('; ')}` : ''}\n`);
    }
  } finally {
    project.remove();
    engine.dispose();
  }
  return outcomes;
}

async function main(): Promise<void> {
  const vars = loadEngines();
  const started = new Set((vars.CIB_ENGINES ?? '').split(/\s+/).filter(Boolean));
  const only = process.env.FAULTS_ONLY?.split(',');
  const cases = casesOf(process.env.FAULTS_CASES);
  const wanted = STRATEGY_COMBOS.filter(c => inLane(c.engine) && (!only || only.includes(comboName(c))));
  const combos = wanted.filter(c => started.has(c.engine));
  if (process.env.REQUIRE_ENGINES === '1' && combos.length < wanted.length) {
    throw new Error(`engines not started: ${wanted.filter(c => !started.has(c.engine)).map(c => c.engine)}`);
  }
  if (laneEngines() && cases.some(isOutage)) {
    // An outage takes the whole registry down, under the other lane's builds too.
    throw new Error('FAULTS_CASES: the registry outages run alone, not in a lane (FAULTS_CASES=repository in lanes)');
  }
  const outcomes: Outcome[] = [];
  for (const combo of combos) outcomes.push(...await runCombo(combo, vars, cases));
  const lane = process.env.CIB_LANE;
  writeLaneResult(`faults-${lane ?? 'all'}-${process.env.FAULTS_CASES ?? 'all'}`, outcomes);
  const ok = printReport(outcomes, `fault-injection suite${lane ? ` (lane ${lane})` : ''}, ${process.env.FAULTS_CASES ?? 'all'} faults`);
  if (!ok) process.exitCode = 1;
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
