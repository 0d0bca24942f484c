/**
 * Runs the generated script for real (bash, coreutils, awk) against a stand-in docker CLI that records
 * its calls: the failure semantics, the conditional cache push and the exports, without an engine.
 * The real engines are exercised in test/integration/.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse } from 'yaml';
import { BuildScript, BuildScriptOptions } from '../../lib/build-script/build-script';
import { branchTag } from '../../lib/build-script/cache-refs';

const FIXTURES = path.join(__dirname, 'fixtures');
const APP = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/app';
const CACHE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/app-cache';

interface Run { status: number; stdout: string; stderr: string; calls: string[]; login: string; exports: Record<string, string> }

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-run-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(options: Partial<BuildScriptOptions>, env: Record<string, string>, log = 'buildkit-mixed.log'): Run {
  const script = path.join(tmp, 'cached-build.sh');
  fs.writeFileSync(script, new BuildScript({ strategy: 'registry', ...options }).renderScript());
  const calls = path.join(tmp, 'calls');
  fs.writeFileSync(calls, '');
  const r = spawnSync('bash', [script], {
    cwd: tmp, encoding: 'utf8',
    env: {
      PATH: `${FIXTURES}/bin:/usr/bin:/bin`, FAKE_CALLS: calls, FAKE_LOG: path.join(FIXTURES, 'logs', log),
      APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE, IMAGE_TAG: 'abc123', CIB_WORK_DIR: path.join(tmp, 'work'), ...env,
    },
  });
  const exported: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^export ([A-Z_]+)='(.*)'$/gm)) exported[m[1]] = m[2];
  const loginFile = `${calls}.login`;
  return {
    status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, calls: fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean),
    login: fs.existsSync(loginFile) ? fs.readFileSync(loginFile, 'utf8') : '', exports: exported,
  };
}

const cacheTo = (r: Run) => r.calls.filter(c => c.includes('--cache-to'));

describe('registry strategy, stand-in engine', () => {
  test('a build that executed steps pushes the app and exports cache to the branch ref, reading branch then default', () => {
    const r = run({}, { CACHE_BRANCH: 'feature/x' });
    expect(r.status).toBe(0);
    const tag = branchTag('feature/x');
    const build = r.calls.find(c => c.startsWith('buildx build') && c.includes('--push'))!;
    expect(build).toContain(`--cache-from type=registry,ref=${CACHE}:${tag} --cache-from type=registry,ref=${CACHE}:main`);
    expect(build).toContain(`--tag ${APP}:abc123`);
    expect(cacheTo(r)).toHaveLength(1);
    expect(cacheTo(r)[0]).toContain(`--cache-to type=registry,ref=${CACHE}:${tag},mode=max,image-manifest=true,oci-mediatypes=true`);
    expect(r.exports).toMatchObject({
      IMAGE_URI: `${APP}:abc123`, IMAGE_TAG: 'abc123', IMAGE_DIGEST: `sha256:${'0'.repeat(63)}7`,
      CACHE_REFS_READ: `${tag},main`, CACHE_REF_WRITTEN: tag, CACHE_STEPS_TOTAL: '3', CACHE_STEPS_CACHED: '1', CACHE_HIT_RATIO: '0.33',
    });
    expect(r.stderr).toContain(`cache: 1/3 steps reused, wrote ${tag}`);
    expect(r.stderr).toMatch(/executed\s+0\.3s\s+\[4\/4\] RUN echo build/);
    expect(r.stderr).toMatch(/cache pushed\s+1010 B/);
  });

  test('a no-op build (every step from cache) exports no cache at all', () => {
    const r = run({}, { CACHE_BRANCH: 'main' }, 'buildkit-allcached.log');
    expect(r.status).toBe(0);
    expect(cacheTo(r)).toEqual([]);
    expect(r.exports).toMatchObject({ CACHE_REF_WRITTEN: '', CACHE_STEPS_CACHED: '3', CACHE_HIT_RATIO: '1.00', CACHE_REFS_READ: 'main' });
    expect(r.stderr).toContain('every step came from cache, nothing exported');
  });

  test('a failed cache export warns and the build still succeeds', () => {
    const r = run({}, { CACHE_BRANCH: 'main', FAKE_CACHE_RC: '1' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`WARNING: cache export to ${CACHE}:main failed`);
    expect(r.exports.CACHE_REF_WRITTEN).toBe('');
  });

  test('a failed app build fails the script with the engine output', () => {
    const r = run({}, { CACHE_BRANCH: 'main', FAKE_BUILD_RC: '17' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('#6 0.213 build');
    expect(cacheTo(r)).toEqual([]);
  });

  test('read-only branches and disabled writes never export cache', () => {
    expect(cacheTo(run({ readOnlyBranches: ['pr-*'] }, { CACHE_BRANCH: 'pr-42' }))).toEqual([]);
    expect(cacheTo(run({ cacheWrite: false }, { CACHE_BRANCH: 'main' }))).toEqual([]);
    expect(cacheTo(run({}, { CACHE_BRANCH: 'main', CACHE_READ_ONLY: '1' }))).toEqual([]);
    const ok = run({ readOnlyBranches: ['pr-*'] }, { CACHE_BRANCH: 'main' });
    expect(ok.stderr).toContain('cache write: main');
    expect(cacheTo(ok)).toHaveLength(1);
  });

  test('logs in to ECR with the password on stdin and never prints it', () => {
    const r = run({}, { CACHE_BRANCH: 'main' });
    expect(r.calls).toContain('aws ecr get-login-password --region eu-west-1');
    expect(r.calls).toContain('login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com');
    expect(r.login).toBe('TOP-SECRET-PASSWORD');
    expect(r.stdout + r.stderr).not.toContain('TOP-SECRET');
  });

  test('a local registry needs no login', () => {
    const r = run({}, { CACHE_BRANCH: 'main', APP_REPOSITORY_URI: '127.0.0.1:5000/app', CACHE_REPOSITORY_URI: 'localhost:5000/cache' });
    expect(r.status).toBe(0);
    expect(r.calls.some(c => c.startsWith('aws') || c.startsWith('login'))).toBe(false);
  });

  test('branch and tag come from CodeBuild variables when not given', () => {
    const r = run({}, { IMAGE_TAG: '', CODEBUILD_RESOLVED_SOURCE_VERSION: 'f'.repeat(40), CODEBUILD_WEBHOOK_HEAD_REF: 'refs/heads/dev' });
    expect(r.exports.IMAGE_TAG).toBe('f'.repeat(40));
    expect(r.exports.CACHE_REFS_READ).toBe('dev,main');
  });

  test('a missing repository or tag is a clear error', () => {
    expect(run({}, { APP_REPOSITORY_URI: '' }).stderr).toContain('APP_REPOSITORY_URI is not set');
    const r = run({}, { IMAGE_TAG: '', GIT_DIR: '/nonexistent' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('IMAGE_TAG is not set and no commit is known');
  });

  test('unknown steps are refused before anything runs', () => {
    const script = path.join(tmp, 's.sh');
    fs.writeFileSync(script, new BuildScript({ strategy: 'registry' }).renderScript());
    const r = spawnSync('bash', [script, 'setup', 'deploy'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', CIB_WORK_DIR: tmp } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("unknown step 'deploy'");
  });
});

describe('build secrets and artifacts', () => {
  test('secrets reach the engine as private files, never as arguments or output, and are removed after the build', () => {
    const r = run({ buildSecretEnv: { npmrc: 'NPM_TOKEN' } }, { CACHE_BRANCH: 'main', NPM_TOKEN: 's3cr3t-token' });
    expect(r.status).toBe(0);
    const build = r.calls.find(c => c.includes('--push'))!;
    expect(build).toMatch(/--secret id=npmrc,src=\S+\/secrets\/npmrc/);
    expect(r.calls.join('\n') + r.stdout + r.stderr).not.toContain('s3cr3t-token');
    // Seen by the engine: mode 600 and the value (once for the build, once for the cache export).
    expect(fs.readFileSync(path.join(tmp, 'calls.secrets'), 'utf8')).toBe('600\ns3cr3t-token\n600\ns3cr3t-token\n');
    expect(fs.existsSync(path.join(tmp, 'work', 'secrets'))).toBe(false);
  });

  test('a missing secret value fails the build naming the secret and the variable', () => {
    const r = run({ buildSecretEnv: { npmrc: 'NPM_TOKEN' } }, { CACHE_BRANCH: 'main' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("build secret 'npmrc': environment variable NPM_TOKEN is empty");
  });

  test('imagedefinitions.json and imageDetail.json are written when CIB_ARTIFACTS_DIR is set', () => {
    const r = run({ containerName: 'web' }, { CACHE_BRANCH: 'main', CIB_ARTIFACTS_DIR: path.join(tmp, 'out') });
    expect(r.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imagedefinitions.json'), 'utf8'))).toEqual([{ name: 'web', imageUri: `${APP}:abc123` }]);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imageDetail.json'), 'utf8'))).toEqual({ ImageURI: `${APP}@sha256:${'0'.repeat(63)}7` });
  });
});

describe('summary, cache-report.json and metrics', () => {
  const report = () => JSON.parse(fs.readFileSync(path.join(tmp, 'work', 'cache-report.json'), 'utf8'));

  test('the report holds every step, the refs, the bytes the export added and the verdict', () => {
    const r = run({}, { CACHE_BRANCH: 'main' });
    expect(r.status).toBe(0);
    expect(report()).toMatchObject({
      strategy: 'registry', branch: 'main', stepsTotal: 3, stepsCached: 1, stepsExecuted: 2, hitRatio: 0.33,
      refsRead: ['main'], refWritten: 'main', cacheBytesPushed: 1010, verdict: 'cache: 1/3 steps reused, wrote main',
      steps: [
        { step: '[2/4] RUN echo deps', status: 'cached', seconds: null },
        { step: '[3/4] COPY app.txt /app.txt', status: 'executed', seconds: 0 },
        { step: '[4/4] RUN echo build', status: 'executed', seconds: 0.3 },
      ],
    });
    expect(report().buildSeconds).toBeGreaterThanOrEqual(0);
  });

  test.each([
    ['no-op', {}, { CACHE_BRANCH: 'main' }, 'buildkit-allcached.log', 'cache: 3/3 steps reused, nothing to write'],
    ['read-only', { readOnlyBranches: ['pr-*'] }, { CACHE_BRANCH: 'pr-1' }, 'buildkit-mixed.log', 'cache: 1/3 steps reused, read-only: nothing written'],
    ['export failed', {}, { CACHE_BRANCH: 'main', FAKE_CACHE_RC: '1' }, 'buildkit-mixed.log',
      'cache: 1/3 steps reused, cache export FAILED (image built and pushed)'],
  ])('verdict when %s', (_name, options, env, log, verdict) => {
    const r = run(options, env, log);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(verdict);
    expect(report().verdict).toBe(verdict);
    expect(report().cacheBytesPushed).toBe(0);
  });

  test('in CodeBuild, one put-metric-data call with the five metrics, dimensions Project and Branch', () => {
    const r = run({}, { CACHE_BRANCH: 'feature/x', CODEBUILD_BUILD_ID: 'web-image:1234' });
    expect(r.status).toBe(0);
    expect(r.calls.filter(c => c.startsWith('aws cloudwatch'))).toEqual([
      `aws cloudwatch put-metric-data --namespace CachedImageBuild --metric-data file://${path.join(tmp, 'work', 'metrics.json')}`,
    ]);
    const data = JSON.parse(fs.readFileSync(path.join(tmp, 'calls.metrics'), 'utf8'));
    const dims = [{ Name: 'Project', Value: 'web-image' }, { Name: 'Branch', Value: 'feature/x' }];
    expect(data).toEqual([
      { MetricName: 'CacheHitRatio', Dimensions: dims, Value: 0.33, Unit: 'None' },
      { MetricName: 'StepsExecuted', Dimensions: dims, Value: 2, Unit: 'Count' },
      { MetricName: 'StepsCached', Dimensions: dims, Value: 1, Unit: 'Count' },
      { MetricName: 'CacheBytesPushed', Dimensions: dims, Value: 1010, Unit: 'Bytes' },
      { MetricName: 'BuildSeconds', Dimensions: dims, Value: expect.any(Number), Unit: 'Seconds' },
    ]);
  });

  test('a failed publish warns and the build succeeds; metrics off or outside CodeBuild publish nothing', () => {
    const failed = run({}, { CACHE_BRANCH: 'main', CODEBUILD_BUILD_ID: 'p:1', FAKE_METRICS_RC: '255' });
    expect(failed.status).toBe(0);
    expect(failed.stderr).toContain('WARNING: metrics: put-metric-data failed');
    for (const r of [
      run({ metrics: false }, { CACHE_BRANCH: 'main', CODEBUILD_BUILD_ID: 'p:1' }),
      run({}, { CACHE_BRANCH: 'main', CODEBUILD_BUILD_ID: 'p:1', CIB_METRICS: 'false' }),
      run({}, { CACHE_BRANCH: 'main' }),
    ]) {
      expect(r.status).toBe(0);
      expect(r.calls.some(c => c.startsWith('aws cloudwatch'))).toBe(false);
    }
  });
});

describe('inline strategy, stand-in engine', () => {
  test('pushes the app image, then the cache ref only when a step executed', () => {
    const r = run({ strategy: 'inline' }, { CACHE_BRANCH: 'main' });
    expect(r.status).toBe(0);
    expect(r.calls).toContain(`push ${APP}:abc123`);
    expect(r.calls).toContain(`push ${CACHE}:main`);
    expect(r.exports.IMAGE_DIGEST).toBe(`sha256:${'0'.repeat(63)}8`);
    const noop = run({ strategy: 'inline' }, { CACHE_BRANCH: 'main' }, 'buildkit-allcached.log');
    expect(noop.calls).not.toContain(`push ${CACHE}:main`);
  });

  test('a failed app push fails the build', () => {
    const r = run({ strategy: 'inline' }, { CACHE_BRANCH: 'main', FAKE_PUSH_RC: '1' });
    expect(r.status).not.toBe(0);
  });
});

describe('the buildspec runs the same script phase by phase', () => {
  test('phases run in separate shells share state and export the variables', () => {
    const spec = parse(new BuildScript({ strategy: 'registry' }).renderBuildSpecYaml());
    const workDir = path.join(tmp, 'cb');
    // A CodeBuild-like runner: each command in a new bash, exported variables read after the last one.
    const commands: string[] = ['install', 'pre_build', 'build', 'post_build'].flatMap(p => spec.phases[p].commands);
    const last = commands.pop()!;
    const calls = path.join(tmp, 'calls');
    const env = {
      PATH: `${FIXTURES}/bin:/usr/bin:/bin`, FAKE_CALLS: calls, FAKE_LOG: path.join(FIXTURES, 'logs', 'buildkit-mixed.log'),
      APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE, CODEBUILD_BUILD_ID: 'p:1', CODEBUILD_RESOLVED_SOURCE_VERSION: 'a'.repeat(40),
      CODEBUILD_SOURCE_VERSION: 'main', ...spec.env.variables, CIB_WORK_DIR: workDir, CIB_SCRIPT: path.join(workDir, 's.sh'),
    };
    for (const c of commands) {
      const r = spawnSync('bash', ['-c', c], { cwd: tmp, env, encoding: 'utf8' });
      expect({ c: c.slice(0, 60), status: r.status, stderr: r.status ? r.stderr : '' }).toEqual({ c: c.slice(0, 60), status: 0, stderr: '' });
    }
    const names: string[] = spec.env['exported-variables'];
    const r = spawnSync('bash', ['-c', `${last}\nfor n in ${names.join(' ')}; do printf '%s=%s\\n' "$n" "\${!n}"; done`], { cwd: tmp, env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`IMAGE_URI=${APP}:${'a'.repeat(40)}`);
    expect(r.stdout).toContain('CACHE_REF_WRITTEN=main');
    expect(r.stdout).toContain('CACHE_HIT_RATIO=0.33');
    const files = spec.artifacts.files.map((f: string) => path.join(tmp, spec.artifacts['base-directory'], f));
    expect(files.map((f: string) => fs.existsSync(f))).toEqual([true, true, true]);
  });
});
