/**
 * Runs the generated script for real (bash, coreutils, awk) against a stand-in docker CLI that records
 * its calls: the failure semantics, the conditional cache push and the exports, without an engine.
 * The real engines are exercised in test/integration/.
 */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse } from 'yaml';
import { BuildScript, BuildScriptOptions, HEREDOC_DELIMITER, ScriptDelivery } from '../../lib/build-script/build-script';
import { branchTag, planCacheRefs } from '../../lib/build-script/cache-refs';

const FIXTURES = path.join(__dirname, 'fixtures');
// The bash that runs the script: CIB_TEST_BASH names another (a bash 4.2 build: Amazon Linux 2's, which CodeBuild's AL2 images
// run; it treats an empty array as unbound under set -u).
const BASH = process.env.CIB_TEST_BASH ?? 'bash';
const APP = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/app';
const CACHE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/app-cache';

interface Run { status: number; stdout: string; stderr: string; calls: string[]; login: string; exports: Record<string, string> }

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-run-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The stand-in engine's environment: its call log, its build log, and its registry (the app repository immutable, like ECR's). */
function fakeEnv(log: string): Record<string, string> {
  return {
    PATH: `${FIXTURES}/bin:/usr/bin:/bin`, FAKE_CALLS: path.join(tmp, 'calls'), FAKE_LOG: path.join(FIXTURES, 'logs', log),
    FAKE_REGISTRY: path.join(tmp, 'registry'), FAKE_IMMUTABLE: APP,
  };
}

/** Runs the script as a user would: the strategy's script, its configuration (from `options`) as environment variables. */
function run(options: Partial<BuildScriptOptions>, env: Record<string, string>, log = 'buildkit-mixed.log', keepRegistry = false): Run {
  const bs = new BuildScript({ strategy: 'registry', ...options });
  // Each build starts with an empty registry unless it is a re-run of the one before.
  if (!keepRegistry) fs.rmSync(path.join(tmp, 'registry'), { recursive: true, force: true });
  const script = path.join(tmp, 'cached-build.sh');
  fs.writeFileSync(script, bs.renderScript());
  const calls = path.join(tmp, 'calls');
  fs.writeFileSync(calls, '');
  const r = spawnSync(BASH, [script], {
    cwd: tmp, encoding: 'utf8',
    env: {
      ...fakeEnv(log), APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE, ...bs.environment(),
      IMAGE_TAG: 'abc123', CIB_WORK_DIR: path.join(tmp, 'work'), ...env,
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
    const build = r.calls.find(c => c.startsWith('buildx build') && c.includes('push=true'))!;
    expect(build).toContain(`--cache-from type=registry,ref=${CACHE}:${tag} --cache-from type=registry,ref=${CACHE}:main`);
    // On the containerd image store BuildKit pushes without storing (no unpack); buildx's push "with docker" then fails.
    // The app image is gzip whatever its layers came as (the cache's are zstd): every runtime pulls it.
    expect(build).toContain(`--output type=image,name=${APP}:abc123,push=true,store=false,compression=gzip,force-compression=true`);
    expect(r.stderr).toContain("buildx's second push 'with docker' has nothing to push");
    expect(cacheTo(r)).toHaveLength(1);
    expect(cacheTo(r)[0]).toContain(`--cache-to type=registry,ref=${CACHE}:${tag},mode=max,image-manifest=true,oci-mediatypes=true,compression=zstd `);
    // The export makes no image (the docker driver would load one into docker's image store).
    expect(cacheTo(r)[0]).toContain('--output type=cacheonly');
    expect(r.exports).toMatchObject({
      IMAGE_URI: `${APP}:abc123`, IMAGE_TAG: 'abc123', IMAGE_DIGEST: `sha256:${'0'.repeat(63)}7`,
      CACHE_REFS_READ: `${tag},main`, CACHE_REF_WRITTEN: tag, CACHE_STEPS_TOTAL: '3', CACHE_STEPS_CACHED: '1', CACHE_HIT_RATIO: '0.33',
    });
    expect(r.stderr).toContain(`cache: 1/3 steps reused, wrote ${tag}`);
    expect(r.stderr).toMatch(/executed\s+0\.3s\s+\[4\/4\] RUN echo build/);
    expect(r.stderr).toMatch(/cache pushed\s+1010 B/);
  });

  test.each([
    ['the containerd store', {}, `--output type=image,name=${APP}:abc123,push=true,store=false `],
    ['the classic store (a docker-container builder)', { FAKE_STORE: 'classic', FAKE_DRIVER: 'docker-container' }, `--tag ${APP}:abc123 --push`],
  ])('CIB_CACHE_COMPRESSION=gzip: the cache export gzip, the app pushed as BuildKit makes it (%s); a bad value is refused', (_, env, output) => {
    const r = run({}, { CACHE_BRANCH: 'main', CIB_CACHE_COMPRESSION: 'gzip', ...env });
    expect(r.status).toBe(0);
    expect(r.calls.find(c => c.startsWith('buildx build') && c.includes('push'))).toContain(output);
    expect(r.calls.some(c => c.includes('force-compression'))).toBe(false);
    expect(cacheTo(r)[0]).toContain(`,oci-mediatypes=true,compression=gzip `);
    const bad = run({}, { CACHE_BRANCH: 'main', CIB_CACHE_COMPRESSION: 'lz4', ...env });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain("CIB_CACHE_COMPRESSION must be zstd or gzip, got 'lz4'");
    expect(bad.calls.filter(c => c.startsWith('buildx build'))).toEqual([]);
  });

  test('a no-op build (every step from cache) exports no cache at all', () => {
    const r = run({}, { CACHE_BRANCH: 'main' }, 'buildkit-allcached.log');
    expect(r.status).toBe(0);
    expect(cacheTo(r)).toEqual([]);
    expect(r.exports).toMatchObject({ CACHE_REF_WRITTEN: '', CACHE_STEPS_CACHED: '3', CACHE_HIT_RATIO: '1.00', CACHE_REFS_READ: 'main' });
    expect(r.stderr).toContain('every step came from cache, nothing exported');
  });

  test("buildx's failing second push passes only when it is the sole error and the registry has what BuildKit pushed", () => {
    const lost = run({}, { CACHE_BRANCH: 'main', FAKE_PUSH_LOST: '1' });
    expect(lost.status).toBe(1);
    expect(lost.stderr).toContain('ERROR: docker buildx build failed (exit 1)');
    const broken = run({}, { CACHE_BRANCH: 'main', FAKE_BUILD_RC: '1' });
    expect(broken.status).toBe(1);
    expect(broken.stderr).toContain('ERROR: docker buildx build failed (exit 1)');
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
    expect(r.calls).toContain('aws ecr get-login-password --region eu-west-1 --cli-connect-timeout 10');
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
    const r = spawnSync(BASH, [script, 'setup', 'deploy'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', CIB_WORK_DIR: tmp } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("unknown step 'deploy'");
  });
});

describe('build secrets and artifacts', () => {
  test('secrets reach the engine as private files, never as arguments or output, and are removed after the build', () => {
    const r = run({ buildSecretEnv: { npmrc: 'NPM_TOKEN' } }, { CACHE_BRANCH: 'main', NPM_TOKEN: 's3cr3t-token' });
    expect(r.status).toBe(0);
    const build = r.calls.find(c => c.includes('push=true'))!;
    expect(build).toMatch(/--secret id=npmrc,src=\S+\/secrets\/npmrc/);
    expect(r.calls.join('\n') + r.stdout + r.stderr).not.toContain('s3cr3t-token');
    // Seen by the engine: mode 600 and the value (once for the build, once for the cache export).
    expect(fs.readFileSync(path.join(tmp, 'calls.secrets'), 'utf8')).toBe('600\ns3cr3t-token\n600\ns3cr3t-token\n');
    expect(fs.existsSync(path.join(tmp, 'work', 'secrets'))).toBe(false);
  });

  test('a step this invocation does not run reports no seconds, whatever the environment holds', () => {
    // The steps as a caller may pick them (no cache step), with an earlier build's step timings in the environment.
    const bs = new BuildScript({ strategy: 'registry' });
    const script = path.join(tmp, 'cached-build.sh');
    fs.writeFileSync(script, bs.renderScript());
    fs.writeFileSync(path.join(tmp, 'calls'), '');
    const work = path.join(tmp, 'work-steps');
    const r = spawnSync(BASH, [script, 'setup', 'login', 'refs', 'build', 'report'], {
      cwd: tmp, encoding: 'utf8',
      env: { ...fakeEnv('buildkit-mixed.log'), APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE, ...bs.environment(),
        IMAGE_TAG: 'abc123', CACHE_BRANCH: 'main', CIB_WORK_DIR: work, CIB_SECONDS_cache: '99.9', CIB_SECONDS_setup: '88.8' },
    });
    expect({ status: r.status, stderr: r.status ? r.stderr : '' }).toEqual({ status: 0, stderr: '' });
    const seconds = JSON.parse(fs.readFileSync(path.join(work, 'cache-report.json'), 'utf8')).stepSeconds;
    expect(Object.keys(seconds)).toEqual(['setup', 'login', 'refs', 'build']);
    expect(seconds.setup).not.toBe(88.8);
    expect(r.stdout + r.stderr).not.toMatch(/99\.9|88\.8/);
  });

  test('a password ask that failed before the login (the skip\'s request) is asked again there: the login never sends an empty password', () => {
    // The skip's request before the login (the steps in a caller's order) finds GetAuthorizationToken throttled once.
    const bs = new BuildScript({ strategy: 'registry' });
    const script = path.join(tmp, 'cached-build.sh');
    fs.writeFileSync(script, bs.renderScript());
    const calls = path.join(tmp, 'calls');
    fs.writeFileSync(calls, '');
    fs.rmSync(`${calls}.login-failed`, { force: true });
    fs.rmSync(`${calls}.login`, { force: true });
    const r = spawnSync(BASH, [script, 'setup', 'refs', 'login', 'build', 'cache', 'report'], {
      cwd: tmp, encoding: 'utf8',
      env: { ...fakeEnv('buildkit-mixed.log'), APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE, ...bs.environment(),
        IMAGE_TAG: 'abc123', CACHE_BRANCH: 'main', CIB_WORK_DIR: path.join(tmp, 'work-throttled'), FAKE_LOGIN_FAIL_FIRST: '1' },
    });
    fs.rmSync(`${calls}.login-failed`, { force: true });
    expect({ status: r.status, stderr: r.status ? r.stderr : '' }).toEqual({ status: 0, stderr: '' });
    const asked = fs.readFileSync(calls, 'utf8').split('\n').filter(c => c.startsWith('aws ecr get-login-password'));
    expect(asked).toEqual(Array(2).fill('aws ecr get-login-password --region eu-west-1 --cli-connect-timeout 10'));
    expect(fs.readFileSync(`${calls}.login`, 'utf8')).toBe('TOP-SECRET-PASSWORD');
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

  test('the report and the summary give the seconds each step took', () => {
    const r = run({}, { CACHE_BRANCH: 'main', FAKE_CACHE_SECONDS: '1.5' });
    expect(r.status).toBe(0);
    const seconds = report().stepSeconds;
    expect(Object.keys(seconds)).toEqual(['setup', 'login', 'refs', 'build', 'cache']);
    // The stand-in export sleeps 1.5 s: the time goes to the cache step, not to the build step before it.
    expect(seconds.cache).toBeGreaterThanOrEqual(1.5);
    expect(seconds.build).toBeLessThan(1.5);
    expect(r.stderr).toMatch(/step time\s+setup \d+\.\d s, login \d+\.\d s, refs \d+\.\d s, build \d+\.\d s, cache \d+\.\d s/);
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
      `aws cloudwatch put-metric-data --namespace CachedImageBuild/web-image --metric-data file://${path.join(tmp, 'work', 'metrics.json')}`,
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

  test('pulls every cache ref, and reads them in order: the branch\'s refs first, a missing ref left out', () => {
    fs.writeFileSync(path.join(tmp, 'Dockerfile'), 'FROM base AS deps\nRUN echo deps\nFROM deps AS build\nRUN echo build\nFROM base\nCOPY --from=build /x /x\n');
    try {
      const tag = branchTag('feature/x');
      // The default branch has no deps ref.
      const r = run({ strategy: 'inline' }, { CACHE_BRANCH: 'feature/x', FAKE_PULL_MISSING: ':main--deps' });
      expect(r.status).toBe(0);
      const pulls = r.calls.filter(c => c.startsWith('pull --quiet '));
      expect(pulls.map(c => c.slice(`pull --quiet ${CACHE}:`.length))).toEqual([tag, `${tag}--deps`, `${tag}--build`, 'main', 'main--deps', 'main--build']);
      const build = r.calls.find(c => c.startsWith('build --progress=plain') && c.includes(`--tag ${APP}:`))!;
      const from = [...build.matchAll(/--cache-from (\S+)/g)].map(m => m[1].slice(CACHE.length + 1));
      expect(from).toEqual([tag, `${tag}--deps`, `${tag}--build`, 'main', 'main--build']);
      expect(r.stderr).toContain(`cache ${CACHE}:main--deps could not be pulled (none yet?): not used`);
    } finally {
      fs.rmSync(path.join(tmp, 'Dockerfile'));
    }
  });

  test('a failed app push fails the build', () => {
    const r = run({ strategy: 'inline' }, { CACHE_BRANCH: 'main', FAKE_PUSH_RC: '1' });
    expect(r.status).not.toBe(0);
  });
});

describe('the buildspec runs the same script phase by phase', () => {
  /** A CodeBuild-like runner: each command in a new bash, the exported variables read after the last one. */
  function runBuildSpec(delivery: ScriptDelivery, config: Record<string, string>): { exports: string; spec: ReturnType<typeof parse> } {
    const bs = new BuildScript({ strategy: 'registry' });
    const spec = parse(bs.renderBuildSpecYaml(delivery, config));
    const workDir = path.join(tmp, 'cb');
    fs.mkdirSync(path.join(tmp, 's3', 'assets'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 's3', 'assets', 'script.sh'), bs.renderScript());
    const commands: string[] = ['install', 'pre_build', 'build', 'post_build'].flatMap(p => spec.phases[p].commands);
    const last = commands.pop()!;
    fs.writeFileSync(path.join(tmp, 'calls'), '');
    const env = {
      ...fakeEnv('buildkit-mixed.log'), FAKE_S3: path.join(tmp, 's3'),
      CODEBUILD_BUILD_ID: 'p:1', CODEBUILD_RESOLVED_SOURCE_VERSION: 'a'.repeat(40), CODEBUILD_SOURCE_VERSION: 'main',
      CIB_SCRIPT_URL: 's3://assets/script.sh', CIB_SCRIPT_SHA256: bs.scriptSha256(),
      ...spec.env.variables, CIB_WORK_DIR: workDir, CIB_SCRIPT: path.join(workDir, 's.sh'),
    };
    for (const c of commands) {
      const r = spawnSync(BASH, ['--norc', '-c', c], { cwd: tmp, env, encoding: 'utf8' });
      expect({ c: c.slice(0, 60), status: r.status, stderr: r.status ? r.stderr : '' }).toEqual({ c: c.slice(0, 60), status: 0, stderr: '' });
    }
    const names: string[] = spec.env['exported-variables'];
    const r = spawnSync(BASH, ['--norc', '-c', `${last}\nfor n in ${names.join(' ')}; do printf '%s=%s\\n' "$n" "\${!n}"; done`],
      { cwd: tmp, env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    return { exports: r.stdout, spec };
  }

  test.each([ScriptDelivery.INLINE, ScriptDelivery.S3])('%s: phases in separate shells share state and export the variables', delivery => {
    const { exports, spec } = runBuildSpec(delivery, { APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE });
    expect(exports).toContain(`IMAGE_URI=${APP}:${'a'.repeat(40)}`);
    expect(exports).toContain('CACHE_REF_WRITTEN=main');
    expect(exports).toContain('CACHE_HIT_RATIO=0.33');
    expect(exports).toContain('IMAGE_REUSED=false');
    const files = spec.artifacts.files.map((f: string) => path.join(tmp, spec.artifacts['base-directory'], f));
    expect(files.map((f: string) => fs.existsSync(f))).toEqual([true, true, true]);
  });

  test('an S3 script that does not match its hash is refused before anything runs', () => {
    const bs = new BuildScript({ strategy: 'registry' });
    const spec = parse(bs.renderBuildSpecYaml(ScriptDelivery.S3));
    fs.mkdirSync(path.join(tmp, 's3', 'assets'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 's3', 'assets', 'script.sh'), bs.renderScript() + 'echo tampered\n');
    const r = spawnSync(BASH, ['--norc', '-c', spec.phases.install.commands[0]], {
      cwd: tmp, encoding: 'utf8',
      env: { ...fakeEnv('buildkit-mixed.log'), FAKE_S3: path.join(tmp, 's3'), CIB_SCRIPT_URL: 's3://assets/script.sh',
        CIB_SCRIPT_SHA256: bs.scriptSha256(), CIB_WORK_DIR: path.join(tmp, 'cb'), CIB_SCRIPT: path.join(tmp, 'cb', 's.sh') },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/did NOT match/);
  });
});

describe('a re-run of a commit reuses the image its tag names (ECR refuses a second push to an immutable tag)', () => {
  test.each(['registry', 'inline'] as const)('%s: the second build of a tag builds nothing and exports the existing digest', strategy => {
    const first = run({ strategy }, { CACHE_BRANCH: 'main', CIB_ARTIFACTS_DIR: path.join(tmp, 'out') });
    expect(first.status).toBe(0);
    expect(first.exports.IMAGE_REUSED).toBe('false');
    const again = run({ strategy }, { CACHE_BRANCH: 'main', CODEBUILD_BUILD_ID: 'p:2', CIB_ARTIFACTS_DIR: path.join(tmp, 'out') },
      'buildkit-mixed.log', true);
    expect(again.status).toBe(0);
    expect(again.calls.filter(c => / ?build /.test(c) || c.startsWith('push '))).toEqual([]);
    const exported = fs.readFileSync(path.join(tmp, 'work', 'exports.env'), 'utf8');
    expect(exported).toContain("export IMAGE_REUSED='true'");
    expect(exported).toContain(`export IMAGE_DIGEST='${first.exports.IMAGE_DIGEST}'`);
    expect(exported).toContain("export CACHE_HIT_RATIO=''");
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'work', 'cache-report.json'), 'utf8'));
    expect(report).toMatchObject({ reused: true, hitRatio: null, stepsTotal: 0, refsRead: [], refWritten: '', digest: first.exports.IMAGE_DIGEST });
    expect(report.verdict).toBe(`image reused: ${APP}:abc123 already existed (${first.exports.IMAGE_DIGEST}), nothing built`);
    expect(again.stderr).toContain(report.verdict);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imageDetail.json'), 'utf8'))).toEqual({ ImageURI: `${APP}@${first.exports.IMAGE_DIGEST}` });
    // Not a cache miss: no cache metric at all, only the build time.
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'calls.metrics'), 'utf8')).map((m: { MetricName: string }) => m.MetricName)).toEqual(['BuildSeconds']);
  });

  test('the tag is checked with one HEAD request, the ECR password on curl\'s stdin, never on a command line', () => {
    run({}, { CACHE_BRANCH: 'main' });
    const again = run({}, { CACHE_BRANCH: 'main' }, 'buildkit-mixed.log', true);
    const head = again.calls.filter(c => c.startsWith('curl '));
    expect(head).toEqual([expect.stringMatching(new RegExp(`^curl -sS --max-time 30 -K - -H Accept: .* -I https://${APP.split('/')[0]}/v2/app/manifests/abc123$`))]);
    expect(again.calls.join('\n') + again.stdout + again.stderr).not.toContain('TOP-SECRET');
  });

  test('without reuse the re-run fails at the push, as on ECR; a registry that cannot be asked means a normal build', () => {
    run({}, { CACHE_BRANCH: 'main' });
    const refused = run({ reuseExistingImage: false }, { CACHE_BRANCH: 'main' }, 'buildkit-mixed.log', true);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain('cannot be overwritten because the tag is immutable');
    const unknown = run({}, { CACHE_BRANCH: 'main', FAKE_CURL_RC: '7' });
    expect(unknown.status).toBe(0);
    expect(unknown.stderr).toContain('could not tell whether');
    expect(unknown.exports.IMAGE_REUSED).toBe('false');
  });
});

describe('configuration is data: no value becomes script text', () => {
  const HOSTILE = `1' "$(touch ${'${TMPDIR}'}/pwned)" '\n${HEREDOC_DELIMITER}\ntouch pwned`;
  test('the script is the same whatever the options, and never holds the here-document delimiter line', () => {
    const plain = new BuildScript({ strategy: 'registry' }).renderScript();
    const loaded = new BuildScript({
      strategy: 'registry', buildArgs: { A: HOSTILE }, target: HOSTILE, platform: HOSTILE, containerName: HOSTILE,
      readOnlyBranches: [HOSTILE], defaultBranch: 'trunk', dockerfile: 'x/Dockerfile', context: 'x',
    }).renderScript();
    expect(loaded).toBe(plain);
    for (const strategy of ['registry', 'inline', 'buildah'] as const) {
      expect(new BuildScript({ strategy }).renderScript().split('\n')).not.toContain(HEREDOC_DELIMITER);
    }
  });

  test('hostile values reach the engine as single arguments and run nothing', () => {
    const value = `1' "$(touch ${tmp}/pwned)" '; touch ${tmp}/pwned2`;
    const r = run({ buildArgs: { A: value }, target: value, platform: value, containerName: value, readOnlyBranches: [value] },
      { CACHE_BRANCH: 'main', CIB_ARTIFACTS_DIR: path.join(tmp, 'out') });
    expect(r.status).toBe(0);
    expect(fs.existsSync(path.join(tmp, 'pwned')) || fs.existsSync(path.join(tmp, 'pwned2'))).toBe(false);
    const build = r.calls.find(c => c.includes('push=true'))!;
    expect(build).toContain(`--build-arg A=${value}`);
    expect(build).toContain(`--target=${value}`);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imagedefinitions.json'), 'utf8'))[0].name).toBe(value);
  });

  test.each([
    [{ CIB_CACHE_WRITE: 'yes' }, "CIB_CACHE_WRITE must be true or false, got 'yes'"],
    [{ CIB_REUSE_EXISTING_IMAGE: '1' }, "CIB_REUSE_EXISTING_IMAGE must be true or false, got '1'"],
    [{ CIB_CONTEXT: '-x' }, "CIB_CONTEXT must be a path relative to the source root, got '-x'"],
    [{ CIB_DOCKERFILE: '/etc/Dockerfile' }, "CIB_DOCKERFILE must be a path relative to the source root, got '/etc/Dockerfile'"],
    [{ CIB_TARGET: 'a\nb' }, 'CIB_TARGET must be one line'],
    [{ CIB_SECRETS: '..=TOKEN' }, "CIB_SECRETS entries must be id=VARIABLE (id: 1-64 of A-Za-z0-9_.-, not . or ..), got '..=TOKEN'"],
    [{ CIB_SECRETS: 'npmrc=$(id)' }, "CIB_SECRETS entries must be id=VARIABLE (id: 1-64 of A-Za-z0-9_.-, not . or ..), got 'npmrc=$(id)'"],
  ])('%j is refused before anything runs', (env, message) => {
    const r = run({}, { CACHE_BRANCH: 'main', ...env });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`ERROR: ${message}`);
    expect(r.calls).toEqual([]);
  });
});

describe('several platforms', () => {
  test('registry: one build of every platform, steps counted per platform, the index digest exported, cache exported once', () => {
    const r = run({ platform: 'linux/amd64,linux/386' }, { CACHE_BRANCH: 'main', CIB_ARTIFACTS_DIR: path.join(tmp, 'out') }, 'buildkit-multiplatform.log');
    expect(r.status).toBe(0);
    const builds = r.calls.filter(c => c.startsWith('buildx build'));
    expect(builds).toHaveLength(2);
    for (const b of builds) expect(b).toContain('--platform=linux/amd64,linux/386');
    expect(cacheTo(r)).toHaveLength(1);
    expect(r.exports).toMatchObject({ IMAGE_DIGEST: `sha256:${'0'.repeat(63)}7`, CACHE_STEPS_TOTAL: '6', CACHE_STEPS_CACHED: '3', CACHE_REF_WRITTEN: 'main' });
    expect(r.stderr).toContain('cache: 3/6 steps reused (linux/amd64 1/3, linux/386 2/3), wrote main');
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'cache-report.json'), 'utf8'));
    expect(report.platforms).toEqual([
      { platform: 'linux/amd64', stepsTotal: 3, stepsCached: 1 }, { platform: 'linux/386', stepsTotal: 3, stepsCached: 2 },
    ]);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imageDetail.json'), 'utf8'))).toEqual({ ImageURI: `${APP}@sha256:${'0'.repeat(63)}7` });
  });

  test('one platform: the report has no per-platform counts', () => {
    const r = run({ platform: 'linux/arm64' }, { CACHE_BRANCH: 'main', CIB_ARTIFACTS_DIR: path.join(tmp, 'out') });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('cache: 1/3 steps reused, wrote main');
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'cache-report.json'), 'utf8')).platforms).toEqual([]);
  });

  test.each(['inline', 'buildah'] as const)('%s refuses several platforms before anything runs, naming the value', strategy => {
    const r = run({ strategy, platform: 'linux/amd64,linux/386' }, { CACHE_BRANCH: 'main' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`ERROR: CIB_PLATFORM 'linux/amd64,linux/386' names several platforms: only the registry strategy builds a `
      + `multi-platform image (one BuildKit build, one cache export holding every platform); the ${strategy} strategy builds one platform a build`);
    expect(r.calls).toEqual([]);
  });
});

describe('the branch', () => {
  test('a source version that names a branch with slashes is that branch (a read-only dependabot build writes no cache)', () => {
    const r = run({ readOnlyBranches: ['dependabot/*'] }, { CODEBUILD_SOURCE_VERSION: 'dependabot/npm_and_yarn/x' });
    expect(r.status).toBe(0);
    expect(r.exports.CACHE_REFS_READ).toBe(`${branchTag('dependabot/npm_and_yarn/x')},main`);
    expect(r.exports.CACHE_REF_WRITTEN).toBe('');
    expect(cacheTo(r)).toEqual([]);
  });

  test.each([
    ['refs/heads/feature/a', 'feature/a'],
    [`arn:aws:s3:::bucket/artifact.zip`, 'main'],
    ['pr/12', 'main'],
    ['refs/tags/v1.0', 'main'],
    ['f'.repeat(40), 'main'],
  ])('source version %s: branch %s', (version, branch) => {
    const r = run({}, { CODEBUILD_SOURCE_VERSION: version, GIT_DIR: '/nonexistent' });
    expect(r.status).toBe(0);
    expect(r.exports.CACHE_REFS_READ.split(',')[0]).toBe(branchTag(branch));
  });
});

describe('the registry strategy without a usable BuildKit image', () => {
  test('falls back to the inline strategy for the build, warns, counts it, and still writes cache', () => {
    const r = run({}, { CACHE_BRANCH: 'main', FAKE_STORE: 'classic', FAKE_BOOTSTRAP_RC: '1', CODEBUILD_BUILD_ID: 'p:1' });
    expect(r.status).toBe(0);
    expect(r.calls).toContain('buildx rm cached-build');
    expect(r.calls.some(c => c.startsWith('build --progress=plain --build-arg BUILDKIT_INLINE_CACHE=1'))).toBe(true);
    expect(r.calls).toContain(`push ${CACHE}:main`);
    expect(r.stderr).toContain('could not be started: #1 ERROR: toomanyrequests');
    expect(r.stderr).toContain('this build falls back to the inline strategy');
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'work', 'cache-report.json'), 'utf8'));
    expect(report.fallback).toBe('inline');
    expect(report.verdict).toContain('builder unavailable, built with the inline strategy');
    const metrics = JSON.parse(fs.readFileSync(path.join(tmp, 'calls.metrics'), 'utf8'));
    expect(metrics.find((m: { MetricName: string }) => m.MetricName === 'BuilderFallback')).toMatchObject({ Value: 1, Unit: 'Count' });
  });

  test('the fallback\'s cache bytes count only new blobs: the snapshot before the export holds the stage refs it writes', () => {
    fs.writeFileSync(path.join(tmp, 'Dockerfile'), 'FROM base AS deps\nRUN echo deps\nFROM deps AS build\nRUN echo build\nFROM base\nCOPY --from=build /x /x\n');
    try {
      const r = run({}, { CACHE_BRANCH: 'main', FAKE_STORE: 'classic', FAKE_BOOTSTRAP_RC: '1' });
      expect(r.status).toBe(0);
      // The snapshot read each stage ref the fallback may write (the stand-in build executed none of their steps: none written).
      const reads = (ref: string) => r.calls.filter(c => c === `buildx imagetools inspect --raw ${CACHE}:${ref}`).length;
      expect(['main', 'main--deps', 'main--build'].map(ref => [ref, reads(ref)])).toEqual([['main', 2], ['main--deps', 1], ['main--build', 1]]);
      // Without the fallback the registry strategy writes no stage ref, and reads none.
      const plain = run({}, { CACHE_BRANCH: 'main', FAKE_STORE: 'classic' });
      expect(plain.status).toBe(0);
      expect(plain.calls.filter(c => /imagetools inspect --raw .*:main--/.test(c))).toEqual([]);
    } finally {
      fs.rmSync(path.join(tmp, 'Dockerfile'), { force: true });
    }
  });

  test('a docker-container builder that starts is used for both invocations', () => {
    const r = run({}, { CACHE_BRANCH: 'main', FAKE_STORE: 'classic' });
    expect(r.status).toBe(0);
    expect(r.calls.filter(c => c.startsWith('buildx build'))).toEqual([
      expect.stringContaining('--builder cached-build'), expect.stringContaining('--builder cached-build'),
    ]);
  });

  test('an unanswering daemon and a missing digest are clear errors', () => {
    const down = run({}, { CACHE_BRANCH: 'main', FAKE_INSPECT_RC: '1' });
    expect(down.status).toBe(1);
    expect(down.stderr).toContain('ERROR: docker buildx inspect failed: ERROR: Cannot connect to the Docker daemon');
    const nodigest = run({}, { CACHE_BRANCH: 'main', FAKE_STORE: 'classic', FAKE_NO_METADATA: '1' });
    expect(nodigest.status).toBe(1);
    expect(nodigest.stderr).toContain('ERROR: the engine reported no digest for');
    const inline = run({ strategy: 'inline' }, { CACHE_BRANCH: 'main', FAKE_NO_REPO_DIGEST: '1' });
    expect(inline.status).toBe(1);
    expect(inline.stderr).toContain('ERROR: the engine reported no digest for');
  });
});

describe('buildah older than 1.29', () => {
  const versions: Array<[string, boolean]> = [
    ['1.23.1', false], ['1.26.9', false], ['1.27.0', false], ['1.28.2', false], ['1.3-dev', false], ['1.29.0', true], ['1.29.0-dev', true],
    ['1.33.7', true], ['1.100.0', true], ['2.0.0', true]];
  test.each(versions)('%s: usable %s', (version, ok) => {
    const script = path.join(tmp, 'b.sh');
    fs.writeFileSync(script, new BuildScript({ strategy: 'buildah' }).renderScript());
    const r = spawnSync(BASH, [script, 'setup'], {
      encoding: 'utf8', env: { ...fakeEnv('buildkit-mixed.log'), FAKE_BUILDAH_VERSION: version, CIB_WORK_DIR: path.join(tmp, 'w') },
    });
    expect(r.status).toBe(ok ? 0 : 1);
    if (ok) return;
    // 1.27 and 1.28 have the flags, and miss from the first ARG on (containers/buildah 3223610, in 1.29).
    expect(r.stderr).toContain(Number(version.split('.')[1]) >= 27
      ? `ERROR: buildah ${version} never reuses an ARG step from the remote cache, nor any step after one (fixed in buildah 1.29)`
      : `ERROR: buildah ${version} has no --cache-from/--cache-to (they came in buildah 1.27, and reuse ARG steps from 1.29)`);
    expect(r.stderr).toContain('1.29 or later (CodeBuild standard:8.0');
  });
});

describe('no silent or misleading outcome', () => {
  test('a log the parser cannot read is unknown, not a perfect cache: the cache is exported and the hit ratio counts as 0', () => {
    const r = run({}, { CACHE_BRANCH: 'main', CODEBUILD_BUILD_ID: 'p:1' }, 'real-buildah-buildah-deps-changed.log');
    expect(r.status).toBe(0);
    expect(cacheTo(r)).toHaveLength(1);
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'work', 'cache-report.json'), 'utf8'));
    expect(report).toMatchObject({ stepsUnknown: true, stepsTotal: 0, hitRatio: null, refWritten: 'main' });
    expect(report.verdict).toBe("cache: results unknown (no step in the engine's log), wrote main");
    expect(r.stderr).toContain("WARNING: no step found in the engine's log");
    expect(fs.readFileSync(path.join(tmp, 'work', 'exports.env'), 'utf8')).toContain("export CACHE_HIT_RATIO=''");
    const metrics = JSON.parse(fs.readFileSync(path.join(tmp, 'calls.metrics'), 'utf8'));
    expect(metrics.find((m: { MetricName: string }) => m.MetricName === 'CacheHitRatio').Value).toBe(0);
  });

  test('a command that stops the script says which it was', () => {
    const r = run({}, { CACHE_BRANCH: 'main', CIB_WORK_DIR: '/proc/cached-build-cannot-write-here' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/\[cached-build\] ERROR: mkdir -p "\$CIB_WORK_DIR" failed \(exit 1\)/);
  });

  test('cache-report.json and the artifacts stay valid JSON whatever a branch or container name holds', () => {
    const branch = `feat/tab\there"quote\\back\u0001ctl`;
    const r = run({ containerName: 'web' }, { CACHE_BRANCH: branch, CIB_ARTIFACTS_DIR: path.join(tmp, 'out') });
    expect(r.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'work', 'cache-report.json'), 'utf8')).branch).toBe(branch);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'cache-report.json'), 'utf8')).branch).toBe(branch);
  });
});

describe('buildah, stand-in engine (real buildah 1.28 and 1.39 logs)', () => {
  const logs = (...names: string[]): string => names.map(n => path.join(FIXTURES, 'logs', n)).join(':');
  const builds = (r: Run): string[] => r.calls.filter(c => c.startsWith('buildah build'));

  test('a step that fails after steps pushed their cache fails the build with the step\'s error, not as a cache export failure', () => {
    const r = run({ strategy: 'buildah' }, {
      CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs('real-buildah-step-fails-after-cache-push.log', 'real-buildah-steps-pulled.log'),
      FAKE_BUILDAH_EXITS: '3,0',
    });
    expect(r.status).toBe(1);
    expect(builds(r)).toHaveLength(1);
    expect(r.stderr).toContain('Error: building at STEP "RUN exit 3": while running runtime: exit status 3');
    expect(r.stderr).toContain('ERROR: buildah build failed (exit 3)');
    expect(r.stderr).not.toContain('cache export failed');
  });

  test('a failed cache push warns, builds again without --cache-to and succeeds, with the export reported failed', () => {
    const r = run({ strategy: 'buildah' }, {
      CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs('real-buildah-cache-push-fails.log', 'real-buildah-steps-pulled.log'),
      FAKE_BUILDAH_EXITS: '125,0',
    });
    expect(r.status).toBe(0);
    expect(builds(r)).toHaveLength(2);
    expect(builds(r)[0]).toContain(`--cache-to ${CACHE}`);
    expect(builds(r)[1]).not.toContain('--cache-to');
    expect(r.stderr).toMatch(/WARNING: cache export failed \(Error: failed pushing cache to .*500 Internal Server Error\); building again/);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'work', 'cache-report.json'), 'utf8')).verdict).toMatch(/cache export FAILED/);
  });

  test('a cached step buildah pulled and ran anyway (a base whose history has no created times) is a warning naming the step', () => {
    const r = run({ strategy: 'buildah' }, { CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs('real-buildah-pulled-unused.log') });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('WARNING: buildah pulled the cached step 86f4c61f25e083f2178acf07817defcad0bafa840d4229599f7e35464da80393 and ran it'
      + ' anyway');
    expect(r.stderr).toContain('a base image whose history entries have no \'created\' time never matches');
    // A build that used what it pulled says nothing of the kind.
    const used = run({ strategy: 'buildah' }, { CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs('real-buildah-steps-pulled.log') });
    expect(used.status).toBe(0);
    expect(used.stderr).not.toContain('ran it anyway');
    expect(r.exports.CACHE_REFS_READ).toBe('86f4c61f25e083f2178acf07817defcad0bafa840d4229599f7e35464da80393');
    // A later stage that hits the same step locally pushes its tag again after "Using cache": no warning.
    const k = 'a'.repeat(64);
    const log = path.join(tmp, 'two-stages.log');
    fs.writeFileSync(log, [
      '[1/2] STEP 1/2: FROM base AS one', '[1/2] STEP 2/2: WORKDIR /app', `--> Cache pulled from remote ${CACHE}:${k}`, `--> Using cache ${'b'.repeat(64)}`,
      '[2/2] STEP 1/2: FROM base', '[2/2] STEP 2/2: WORKDIR /app', `--> Using cache ${'b'.repeat(64)}`, `--> Pushing cache [${CACHE}]:${k}`, '',
    ].join('\n'));
    const local = run({ strategy: 'buildah' }, { CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: log });
    expect(local.status).toBe(0);
    expect(local.stderr).not.toContain('ran it anyway');
  });

  test('buildah 1.39\'s log (an ARG step pulled like any other; "Cache pulled from remote REPO:KEY:KEY"): every step cached, each tag read once', () => {
    const r = run({ strategy: 'buildah' }, { CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs('real-buildah139-arg-steps-pulled.log') });
    expect(r.status).toBe(0);
    expect(r.exports.CACHE_REFS_READ.split(',')).toEqual([
      '68d2840aaf874f2768aae7744c5164939735acbac07cbf92e45696ae107cfa62', '30c78269b5618f422093d03d933e33f346b47f469075a9f2c7ea3066a58a778e',
      '6de108541f6bd0c30ec783a189345f799bb4bcf19b1bfd39f355d1c22ba368c9', '3c44dafe722d860073613256d6f60f17106d4dd3e6884ea19259b8697b42fba9',
      'b694f02e10306cc8d760aa10c447e9d582a5fbb318b52df449f655323d10ca71',
    ]);
    expect(r.exports).toMatchObject({ CACHE_STEPS_TOTAL: '5', CACHE_STEPS_CACHED: '5', CACHE_REF_WRITTEN: '' });
  });

  test('a step tag the build read and that is gone from the cache repository is pushed back from the pulled copy', () => {
    const kept = 'b2f0e996d614888a14fd70068e45cc7d64a932ab8287f81d648c58ea2923c5dd';
    const gone = '1b846eebcb9946c45d9e3fb8907f546e0e2831792800263204bea32d7dd8449b';
    fs.mkdirSync(path.join(tmp, 'registry', CACHE), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'registry', CACHE, kept), `sha256:${'1'.repeat(64)}`);
    const r = run({ strategy: 'buildah' }, { CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs('real-buildah-steps-pulled.log') }, undefined, true);
    expect(r.status).toBe(0);
    const pushes = r.calls.filter(c => c.startsWith('buildah push') && c.includes(CACHE));
    expect(pushes).toEqual([`buildah push ${CACHE}:${gone} docker://${CACHE}:${gone}`]);
    expect(r.stderr).toContain(`cache step ${gone} was gone from the cache repository: pushed back`);
    expect(r.exports.CACHE_REFS_READ).toBe(`${gone},${kept}`);
  });
});

describe('several images in one cache repository (a CachedImageBuildGroup)', () => {
  const group = { imageName: 'api', cacheFromImages: ['web', 'api'] };
  const feature = branchTag('feature/x', 128 - 'api--'.length);
  const featureWeb = branchTag('feature/x', 128 - 'web--'.length);
  const reads = [`api--${feature}`, `web--${featureWeb}`, 'api--main', 'web--main'];

  test('registry: the second image reads its own refs, then the sibling\'s, of the branch then the default branch; writes only its own', () => {
    const r = run(group, { CACHE_BRANCH: 'feature/x' });
    expect(r.status).toBe(0);
    const build = r.calls.find(c => c.startsWith('buildx build') && c.includes('push=true'))!;
    expect(build).toContain(reads.map(ref => `--cache-from type=registry,ref=${CACHE}:${ref}`).join(' '));
    expect(cacheTo(r)).toHaveLength(1);
    expect(cacheTo(r)[0]).toContain(`--cache-to type=registry,ref=${CACHE}:api--${feature},mode=max`);
    // The own ref first: the cleanup takes a build's first ref read as its branch's.
    expect(r.exports).toMatchObject({ CACHE_REFS_READ: reads.join(','), CACHE_REF_WRITTEN: `api--${feature}` });
    expect(planCacheRefs('feature/x', 'main', [], true, 'api', ['web', 'api'])).toEqual({ read: reads, write: `api--${feature}` });
  });

  test('inline: every ref read, the sibling\'s included, is pulled and passed as --cache-from; the export goes to the own ref', () => {
    const r = run({ ...group, strategy: 'inline' }, { CACHE_BRANCH: 'main' });
    expect(r.status).toBe(0);
    for (const ref of ['api--main', 'web--main']) expect(r.calls).toContain(`pull --quiet ${CACHE}:${ref}`);
    const build = r.calls.find(c => c.startsWith('build ') && c.includes(`--tag ${APP}:abc123`))!;
    expect(build).toContain(`--cache-from ${CACHE}:api--main --cache-from ${CACHE}:web--main`);
    expect(r.calls).toContain(`push ${CACHE}:api--main`);
    expect(r.calls).not.toContain(`push ${CACHE}:web--main`);
    expect(r.exports).toMatchObject({ CACHE_REFS_READ: 'api--main,web--main', CACHE_REF_WRITTEN: 'api--main' });
  });

  test('buildah: reads and writes the shared repository\'s content-addressed step cache, which every image shares as it is', () => {
    const logs = path.join(FIXTURES, 'logs', 'real-buildah-steps-pulled.log');
    const alone = run({ strategy: 'buildah' }, { CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs });
    const grouped = run({ ...group, strategy: 'buildah' }, { CACHE_BRANCH: 'main', FAKE_BUILDAH_LOGS: logs });
    expect(grouped.status).toBe(0);
    const build = (r: Run) => r.calls.find(c => c.startsWith('buildah build'))!;
    expect(build(grouped)).toContain(`--cache-from ${CACHE} --cache-to ${CACHE}`);
    // Step tags are content addresses: a step a sibling built is found by the same tag, so the command is the one of an image alone.
    expect(build(grouped)).toBe(build(alone));
  });

  test('a long branch keeps the ref within 128 characters, and the refs of a plain build are unchanged', () => {
    const r = run(group, { CACHE_BRANCH: 'x'.repeat(200) });
    expect(r.status).toBe(0);
    const own = r.exports.CACHE_REF_WRITTEN;
    expect(own).toMatch(/^api--x+-[0-9a-f]{8}$/);
    expect(own).toHaveLength(128);
    expect(run({}, { CACHE_BRANCH: 'main' }).exports.CACHE_REFS_READ).toBe('main');
  });

  test('a bad image name, or siblings without a name of its own, is an error naming the value before anything runs', () => {
    for (const [env, message] of [
      [{ CIB_IMAGE_NAME: 'web--x' }, "entries must be 1-32 of a-z 0-9 with single . _ - between, got 'web--x'"],
      [{ CIB_IMAGE_NAME: 'api', CIB_CACHE_FROM_IMAGES: 'web Api' }, "got 'Api'"],
      [{ CIB_IMAGE_NAME: 'x'.repeat(33) }, `got '${'x'.repeat(33)}'`],
      [{ CIB_CACHE_FROM_IMAGES: 'web' }, 'CIB_CACHE_FROM_IMAGES needs CIB_IMAGE_NAME'],
    ] as const) {
      const r = run({}, { CACHE_BRANCH: 'main', ...env });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(message);
      expect(r.calls.filter(c => c.startsWith('buildx build'))).toEqual([]);
    }
  });
});

describe('the native multi-platform path: one build per platform, then the merge step', () => {
  const host = APP.split('/')[0];
  const stored = (tag: string) => path.join(tmp, 'registry', host, 'app', tag);
  /** `bash cached-build.sh merge` with the merge's configuration; the registry is the one the platform builds pushed to. */
  function merge(platforms: string[], env: Record<string, string> = {}): Run {
    const bs = new BuildScript({ strategy: 'registry', mergePlatforms: platforms });
    const script = path.join(tmp, 'cached-build.sh');
    fs.writeFileSync(script, bs.renderScript());
    const calls = path.join(tmp, 'calls');
    fs.writeFileSync(calls, '');
    const r = spawnSync(BASH, [script, 'merge'], {
      cwd: tmp, encoding: 'utf8',
      env: { ...fakeEnv('buildkit-mixed.log'), ...bs.environment(), APP_REPOSITORY_URI: APP, IMAGE_TAG: 'abc123', CIB_WORK_DIR: path.join(tmp, 'work'), ...env },
    });
    const exported: Record<string, string> = {};
    for (const m of r.stdout.matchAll(/^export ([A-Z_]+)='(.*)'$/gm)) exported[m[1]] = m[2];
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, calls: fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean), login: '', exports: exported };
  }
  const sha = (file: string) => `sha256:${createHash('sha256').update(fs.readFileSync(file)).digest('hex')}`;
  /** The two platform builds, as their projects run them (each its own cache refs, named after the platform). */
  function buildPlatforms(platforms: string[], env: Record<string, string> = {}): Run[] {
    fs.rmSync(path.join(tmp, 'registry'), { recursive: true, force: true });
    return platforms.map(p => run({ platform: p, platformTags: true, imageName: p.replace(/\//g, '-') }, { CACHE_BRANCH: 'main', ...env }, 'buildkit-mixed.log', true));
  }

  test('each platform pushes <tag>--<os>-<arch> with its own cache ref; the merge writes one index naming both, exported and in the artifacts', () => {
    const builds = buildPlatforms(['linux/amd64', 'linux/arm64']);
    expect(builds.map(b => b.status)).toEqual([0, 0]);
    expect(builds.map(b => b.exports.IMAGE_TAG)).toEqual(['abc123--linux-amd64', 'abc123--linux-arm64']);
    expect(builds.map(b => b.exports.CACHE_REF_WRITTEN)).toEqual(['linux-amd64--main', 'linux-arm64--main']);
    expect(builds[1].calls.find(c => c.startsWith('buildx build'))).toContain('--platform=linux/arm64');

    const m = merge(['linux/amd64', 'linux/arm64'], { CIB_ARTIFACTS_DIR: path.join(tmp, 'out') });
    expect(m.status).toBe(0);
    const index = JSON.parse(fs.readFileSync(`${stored('abc123')}.index`, 'utf8'));
    expect(index).toEqual({
      schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests: [
        { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: expect.any(Number), digest: expect.stringMatching(/^sha256:/), platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: expect.any(Number), digest: expect.stringMatching(/^sha256:/), platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
    // Each entry is the digest and size of the manifest bytes the registry serves for that platform's tag.
    ['abc123--linux-amd64', 'abc123--linux-arm64'].forEach((tag, i) => {
      const served = `{"schemaVersion":2,"config":{"digest":"${fs.readFileSync(stored(tag), 'utf8').trim()}","size":10},"layers":[]}`;
      expect(index.manifests[i]).toMatchObject({ size: served.length, digest: `sha256:${createHash('sha256').update(served).digest('hex')}` });
    });
    expect(m.exports).toMatchObject({ IMAGE_URI: `${APP}:abc123`, IMAGE_TAG: 'abc123', IMAGE_DIGEST: sha(`${stored('abc123')}.index`), IMAGE_REUSED: 'false' });
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imagedefinitions.json'), 'utf8'))).toEqual([{ name: 'app', imageUri: `${APP}:abc123` }]);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imageDetail.json'), 'utf8'))).toEqual({ ImageURI: `${APP}@${m.exports.IMAGE_DIGEST}` });
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'cache-report.json'), 'utf8'));
    expect(report).toMatchObject({ merge: true, reused: false, image: `${APP}:abc123`, digest: m.exports.IMAGE_DIGEST });
    expect(report.platforms.map((p: { platform: string }) => p.platform)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(m.stderr).toContain(`index merged: ${APP}:abc123 (${m.exports.IMAGE_DIGEST}) names linux/amd64=`);
    // Registry requests only, the ECR password on curl's stdin: a read per platform and one PUT.
    expect(m.calls.map(c => c.replace(/ -H Accept: [^-]*-/, ' -H Accept -'))).toEqual([
      'aws ecr get-login-password --region eu-west-1 --cli-connect-timeout 10',
      expect.stringMatching(/-D .* https:\/\/.*\/manifests\/abc123--linux-amd64$/),
      expect.stringMatching(/-D .* https:\/\/.*\/manifests\/abc123--linux-arm64$/),
      expect.stringMatching(/-I https:\/\/.*\/manifests\/abc123$/),
      expect.stringMatching(
        /-X PUT -H Content-Type: application\/vnd.docker.distribution.manifest.list.v2\+json --data-binary @.* https:\/\/.*\/manifests\/abc123$/),
    ]);
    expect(m.calls.join('\n') + m.stdout + m.stderr).not.toContain('TOP-SECRET');
  });

  test('a re-run finds the index and reuses it: nothing merged, the same digest', () => {
    buildPlatforms(['linux/amd64', 'linux/386']);
    const first = merge(['linux/amd64', 'linux/386']);
    expect(first.status).toBe(0);
    const again = merge(['linux/amd64', 'linux/386']);
    expect(again.status).toBe(0);
    expect(again.exports).toMatchObject({ IMAGE_REUSED: 'true', IMAGE_DIGEST: first.exports.IMAGE_DIGEST });
    expect(again.calls.filter(c => c.includes('PUT'))).toEqual([]);
    expect(again.stderr).toContain(`index reused: ${APP}:abc123 already existed (${first.exports.IMAGE_DIGEST}), nothing merged`);
    // The platform builds' re-runs reuse their own images too.
    const rerun = run({ platform: 'linux/386', platformTags: true, imageName: 'linux-386' }, { CACHE_BRANCH: 'main' }, 'buildkit-mixed.log', true);
    expect(rerun.exports).toMatchObject({ IMAGE_REUSED: 'true', IMAGE_TAG: 'abc123--linux-386' });
  });

  test('a tag that already names another image (an earlier single-platform build of the commit) stops the merge, naming both', () => {
    fs.rmSync(path.join(tmp, 'registry'), { recursive: true, force: true });
    expect(run({}, { CACHE_BRANCH: 'main' }, 'buildkit-mixed.log', true).status).toBe(0);
    const single = fs.readFileSync(stored('abc123'), 'utf8').trim();
    for (const p of ['linux/amd64', 'linux/arm64']) {
      expect(run({ platform: p, platformTags: true, imageName: p.replace('/', '-') }, { CACHE_BRANCH: 'main' }, 'buildkit-mixed.log', true).status).toBe(0);
    }
    const m = merge(['linux/amd64', 'linux/arm64']);
    expect(m.status).toBe(1);
    expect(m.stderr).toMatch(new RegExp(`ERROR: ${APP}:abc123 already names ${single}, not the index of these platform images \\(sha256:[0-9a-f]{64}\\): `
      + 'a tag names one image'));
    expect(m.calls.filter(c => c.includes('PUT'))).toEqual([]);
    // Without the check, the immutable tag refuses the PUT: a clear error with the registry's answer.
    const refused = merge(['linux/amd64', 'linux/arm64'], { CIB_REUSE_EXISTING_IMAGE: 'false' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`ERROR: the index ${APP}:abc123 could not be pushed (HTTP 400): {"errors":[{"code":"TAG_INVALID"`);
  });

  test('a refused login reads nothing: the first platform image is unreadable (HTTP 401), and no index is written', () => {
    buildPlatforms(['linux/amd64', 'linux/arm64']);
    const m = merge(['linux/amd64', 'linux/arm64'], { FAKE_LOGIN_RC: '255' });
    expect(m.status).toBe(1);
    expect(m.stderr).toContain(`ERROR: the linux/amd64 image ${APP}:abc123--linux-amd64 could not be read (HTTP 401)`);
    expect(fs.existsSync(`${stored('abc123')}.index`)).toBe(false);
  });

  test('a Content-Type with parameters, spaces and capitals is still the manifest type (RFC 9110: case-insensitive)', () => {
    const type = 'Application/VND.docker.distribution.manifest.v2+json ; charset=utf-8';
    buildPlatforms(['linux/amd64', 'linux/arm64'], { FAKE_MEDIA_TYPE: type });
    const m = merge(['linux/amd64', 'linux/arm64'], { FAKE_MEDIA_TYPE: type });
    expect(m.status).toBe(0);
    const index = JSON.parse(fs.readFileSync(`${stored('abc123')}.index`, 'utf8'));
    expect(index.manifests.map((x: { mediaType: string }) => x.mediaType)).toEqual(Array(2).fill('application/vnd.docker.distribution.manifest.v2+json'));
  });

  test('OCI platform manifests make an OCI index; a variant is in the platform', () => {
    buildPlatforms(['linux/amd64', 'linux/arm/v7'], { FAKE_MEDIA_TYPE: 'application/vnd.oci.image.manifest.v1+json' });
    const m = merge(['linux/amd64', 'linux/arm/v7'], { FAKE_MEDIA_TYPE: 'application/vnd.oci.image.manifest.v1+json' });
    expect(m.status).toBe(0);
    const index = JSON.parse(fs.readFileSync(`${stored('abc123')}.index`, 'utf8'));
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests[1].platform).toEqual({ architecture: 'arm', os: 'linux', variant: 'v7' });
    expect(fs.existsSync(stored('abc123--linux-arm-v7'))).toBe(true);
  });

  test('a platform image that is not pushed yet is a clear error naming it, and no index is written', () => {
    buildPlatforms(['linux/amd64']);
    const m = merge(['linux/amd64', 'linux/arm64']);
    expect(m.status).toBe(1);
    expect(m.stderr).toContain(`ERROR: the linux/arm64 image ${APP}:abc123--linux-arm64 could not be read (HTTP 404): the merge runs after every `
      + 'platform\'s build has pushed its image');
    expect(fs.existsSync(`${stored('abc123')}.index`)).toBe(false);
  });

  test('a platform image that is itself an index is refused: an index cannot hold one', () => {
    buildPlatforms(['linux/amd64', 'linux/arm64'], { FAKE_MEDIA_TYPE: 'application/vnd.oci.image.index.v1+json' });
    const m = merge(['linux/amd64', 'linux/arm64'], { FAKE_MEDIA_TYPE: 'application/vnd.oci.image.index.v1+json' });
    expect(m.status).toBe(1);
    expect(m.stderr).toContain("is 'application/vnd.oci.image.index.v1+json', not one platform's image manifest");
  });

  test('a long tag: each platform tag and the index tag stay within 128 characters, and the merge finds the platform tags', () => {
    const long = `release-${'x'.repeat(140)}`;
    const builds = buildPlatforms(['linux/amd64', 'linux/386'], { IMAGE_TAG: long });
    for (const b of builds) expect(b.exports.IMAGE_TAG.length).toBeLessThanOrEqual(128);
    expect(builds[0].exports.IMAGE_TAG).toMatch(/--linux-amd64$/);
    const m = merge(['linux/amd64', 'linux/386'], { IMAGE_TAG: long });
    expect(m.status).toBe(0);
    expect(m.exports.IMAGE_TAG).toBe(branchTag(long));
  });

  test.each([
    [{ CIB_PLATFORM_TAGS: 'true', CIB_PLATFORM: 'linux/amd64,linux/arm64' }, "CIB_PLATFORM must name one platform (e.g. linux/arm64), got 'linux/amd64,linux/arm64'"],
    [{ CIB_PLATFORM_TAGS: 'true', CIB_PLATFORM: '' }, "CIB_PLATFORM must name one platform (e.g. linux/arm64), got ''"],
    [{ CIB_PLATFORM_TAGS: 'yes' }, "CIB_PLATFORM_TAGS must be true or false, got 'yes'"],
    [{ CIB_MERGE_PLATFORMS: 'linux/amd64 arm64' }, "CIB_MERGE_PLATFORMS entries must be platforms like linux/arm64, got 'arm64'"],
  ])('a bad value is refused before anything runs, naming it: %j', (env, message) => {
    const r = run({}, { CACHE_BRANCH: 'main', ...env });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(message);
    expect(r.calls).toEqual([]);
  });

  test.each([
    [['linux/amd64'], "CIB_MERGE_PLATFORMS must name two or more platforms (one index of them), got 'linux/amd64'"],
    [['linux/amd64', 'linux/amd64'], 'CIB_MERGE_PLATFORMS names linux/amd64 twice'],
  ])('the merge of %j is refused before any request', (platforms, message) => {
    const m = merge(platforms);
    expect(m.status).toBe(1);
    expect(m.stderr).toContain(message);
    expect(m.calls).toEqual([]);
  });

  test('the stand-in registry refuses an index naming a manifest it does not hold (ECR19), and a second PUT to an immutable tag', () => {
    buildPlatforms(['linux/amd64', 'linux/386']);
    const index = path.join(tmp, 'index.json');
    const put = (tag: string) => spawnSync(path.join(FIXTURES, 'bin', 'curl'), ['-sS', '-K', '-', '-X', 'PUT', '-H',
      'Content-Type: application/vnd.oci.image.index.v1+json', '--data-binary', `@${index}`, '-w', '%{http_code}', `https://${host}/v2/app/manifests/${tag}`],
    { encoding: 'utf8', input: 'user = "AWS:TOP-SECRET-PASSWORD"', env: fakeEnv('buildkit-mixed.log') });
    fs.writeFileSync(index, JSON.stringify({ schemaVersion: 2, manifests: [{ digest: `sha256:${'1'.repeat(64)}` }] }));
    expect(put('x1').stdout).toMatch(/MANIFEST_INVALID.*400$/);
    fs.writeFileSync(index, JSON.stringify({ schemaVersion: 2, manifests: [] }));
    expect(put('x2').stdout).toMatch(/201$/);
    expect(put('x2').stdout).toMatch(/TAG_INVALID.*400$/);
  });
});

describe('a build whose inputs an image in the app repository already has is a retag (skipUnchangedBuilds)', () => {
  const HOST = APP.split('/')[0];
  const BASE = `${HOST}/base:1.0`;
  const digestOf = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
  const setBase = (digest: string): void => {
    fs.mkdirSync(path.join(tmp, 'registry', HOST, 'base'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'registry', HOST, 'base', '1.0'), `${digest}\n`);
  };
  /** The project is a directory of its own: the work dir, the call log and the stand-in registry are not in its context. */
  const at = (file: string): string => path.join(tmp, 'p', file);
  const write = (file: string, text: string): void => {
    fs.mkdirSync(path.dirname(at(file)), { recursive: true });
    fs.writeFileSync(at(file), text);
  };
  const project = (dockerfile = `FROM ${BASE} AS base\nRUN echo deps\nFROM base\nCOPY . /app\n`): void => {
    write('Dockerfile', dockerfile);
    write('src/app.txt', 'v1\n');
    setBase(digestOf(0xba5e));
  };
  /** One build of commit TAG on the kept registry (the first one of a test starts it). */
  const build = (tag: string, options: Partial<BuildScriptOptions> = {}, env: Record<string, string> = {}): Run =>
    run({ context: 'p', dockerfile: 'p/Dockerfile', ...options }, { CACHE_BRANCH: 'main', IMAGE_TAG: tag, CIB_WORK_DIR: path.join(tmp, `work-${tag}`), ...env }, 'buildkit-mixed.log', true);
  const engineCalls = (r: Run): string[] => r.calls.filter(c => / ?build /.test(c) || c.startsWith('push '));
  const records = (): string[] => fs.readdirSync(path.join(tmp, 'registry', HOST, 'app')).filter(f => f.startsWith('cib-inputs-'));

  test.each(['registry', 'inline'] as const)('%s: built once, then tagged: no engine call, the same digest, reported as reused', strategy => {
    project();
    const first = build('c1', { strategy });
    expect(first.status).toBe(0);
    expect(first.exports.IMAGE_REUSED).toBe('false');
    expect(first.stderr).toMatch(/inputs: cib-inputs-[0-9a-f]{64}, new: building/);
    expect(records()).toHaveLength(1);
    expect(fs.readFileSync(path.join(tmp, 'registry', HOST, 'app', records()[0]), 'utf8').trim()).toBe(first.exports.IMAGE_DIGEST);
    // Whether docker has buildx is asked once a build (the setup step records it for the others, the snapshot's subshell included).
    expect(first.calls.filter(c => c === 'buildx version')).toHaveLength(1);

    // Another commit, another branch, the same inputs.
    const second = build('c2', { strategy }, { CACHE_BRANCH: 'feature/x', CIB_ARTIFACTS_DIR: path.join(tmp, 'out') });
    expect(second.status).toBe(0);
    expect(engineCalls(second)).toEqual([]);
    expect(second.exports).toMatchObject({ IMAGE_REUSED: 'true', IMAGE_DIGEST: first.exports.IMAGE_DIGEST, IMAGE_URI: `${APP}:c2`, CACHE_REF_WRITTEN: '' });
    expect(fs.readFileSync(path.join(tmp, 'registry', HOST, 'app', 'c2'), 'utf8').trim()).toBe(first.exports.IMAGE_DIGEST);
    // One HEAD of the base, one of the record, the record's manifest read by digest and PUT under the commit's tag.
    const curls = second.calls.filter(c => c.startsWith('curl ')).map(c => c.replace(/^curl .* (-I|-X PUT|-D) /, '$1 ').replace(/ -H .*?(https)/, ' $1'));
    expect(curls).toEqual([
      expect.stringMatching(/^-I https:\/\/.*\/v2\/app\/manifests\/c2$/),
      expect.stringMatching(/^-I https:\/\/.*\/v2\/base\/manifests\/1\.0$/),
      expect.stringMatching(/^-I https:\/\/.*\/v2\/app\/manifests\/cib-inputs-[0-9a-f]{64}$/),
      expect.stringMatching(new RegExp(`/v2/app/manifests/${first.exports.IMAGE_DIGEST}$`)),
      expect.stringMatching(/^-X PUT .*\/v2\/app\/manifests\/c2$/),
    ]);
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'work-c2', 'cache-report.json'), 'utf8'));
    expect(report).toMatchObject({ reused: true, reusedFrom: records()[0], stepsTotal: 0, digest: first.exports.IMAGE_DIGEST });
    expect(report.verdict).toBe(`image reused: the inputs are those of ${records()[0]} (${first.exports.IMAGE_DIGEST}), tagged ${APP}:c2, nothing built`);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'out', 'imageDetail.json'), 'utf8'))).toEqual({ ImageURI: `${APP}@${first.exports.IMAGE_DIGEST}` });
    expect(second.calls.join('\n') + second.stdout + second.stderr).not.toContain('TOP-SECRET');
  });

  const hub = (repo: string, tag: string, digest: string): void => {
    fs.mkdirSync(path.join(tmp, 'registry', repo), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'registry', repo, tag), `${digest}\n`);
  };
  // Each case: the base's registry host as the Dockerfile names it (none: the app's own base), and its region.
  test.each([
    ['docker\'s containerd store, a base in ECR', {}, '', ''],
    // A pushing builder (no check of the push), a base no ECR request reads: the record's own requests ask for the password.
    ['the classic store with a docker-container builder, a Docker Hub base', { FAKE_STORE: 'classic', FAKE_DRIVER: 'docker-container' }, '', ''],
    // One password serves every ECR registry of the region (ECR7): the stand-in registry takes the region's password only.
    ['a base in another account\'s ECR registry of the region', {}, '210987654321.dkr.ecr.eu-west-1.amazonaws.com', 'eu-west-1'],
    // Another region's registries take that region's password only: it is asked for, and the app's is still the one cached.
    ['a base in another region\'s ECR registry', {}, '123456789012.dkr.ecr.us-east-1.amazonaws.com', 'us-east-1'],
    // ECR's other hosts (ECR23): dual-stack, FIPS with https's port, a host name in upper case.
    ['a base at another region\'s dual-stack ECR endpoint', {}, '123456789012.dkr-ecr.us-east-1.on.aws', 'us-east-1'],
    ['a base at another region\'s FIPS ECR endpoint, with port 443', {}, '123456789012.dkr.ecr-fips.us-west-2.amazonaws.com:443', 'us-west-2'],
    ['a base in another account\'s ECR registry of the region, its host in upper case', {}, '210987654321.DKR.ECR.EU-WEST-1.AMAZONAWS.COM', 'eu-west-1'],
  ])('the login\'s ECR password serves the skip\'s and the record\'s requests of the same process: one AWS CLI call (%s)', (how, env, baseHost, baseRegion) => {
    if (how.includes('Hub')) {
      project('FROM node:20 AS base\nRUN echo deps\nFROM base\nCOPY . /app\n');
      hub('registry-1.docker.io/library/node', '20', digestOf(0x20));
    } else if (baseHost) {
      project(`FROM ${baseHost}/base:1.0 AS base\nRUN echo deps\nFROM base\nCOPY . /app\n`);
      // One registry, whatever the case of its host name or the port https uses.
      hub(`${baseHost.toLowerCase().replace(/:443$/, '')}/base`, '1.0', digestOf(0xba5e));
    } else {
      project();
    }
    const r = build('c1', {}, env);
    expect(r.status).toBe(0);
    expect(records()).toHaveLength(1);
    // One call a region asked: the app's (the login), the base's region when it is another.
    const regions = ['eu-west-1', ...(baseRegion && baseRegion !== 'eu-west-1' ? [baseRegion] : [])];
    expect(r.calls.filter(c => c.startsWith('aws '))).toEqual(regions.map(x => `aws ecr get-login-password --region ${x} --cli-connect-timeout 10`));
    // The engine logs in to the app's registry and to a base's ECR registry (its pull) as the Dockerfile names it, each with its
    // region's password.
    expect(r.calls.filter(c => c.startsWith('login '))).toEqual(['123456789012.dkr.ecr.eu-west-1.amazonaws.com', ...(baseHost ? [baseHost] : [])]
      .map(h => `login --username AWS --password-stdin ${h}`));
    // Steps run apart (CodeBuild's phases: the login in pre_build, the record in build) ask again where they need it.
    write('src/app.txt', 'v2\n');
    const phases = path.join(tmp, 'work-c2');
    for (const steps of [['setup', 'login', 'refs'], ['build', 'cache'], ['report']]) {
      const bs = new BuildScript({ strategy: 'registry', context: 'p', dockerfile: 'p/Dockerfile' });
      fs.writeFileSync(path.join(tmp, 's.sh'), bs.renderScript());
      fs.writeFileSync(path.join(tmp, 'calls'), '');
      const p = spawnSync(BASH, [path.join(tmp, 's.sh'), ...steps], {
        cwd: tmp, encoding: 'utf8',
        env: { ...fakeEnv('buildkit-mixed.log'), APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE, ...bs.environment(),
          IMAGE_TAG: 'c2', CACHE_BRANCH: 'main', CIB_WORK_DIR: phases, ...env },
      });
      expect({ steps, status: p.status, stderr: p.status ? p.stderr : '' }).toEqual({ steps, status: 0, stderr: '' });
      const logins = fs.readFileSync(path.join(tmp, 'calls'), 'utf8').split('\n').filter(c => c.startsWith('aws ecr get-login-password'));
      expect({ steps, logins }).toEqual({ steps, logins: steps.includes('report') ? [] : regions.map(x => `aws ecr get-login-password --region ${x} --cli-connect-timeout 10`) });
    }
    expect(records()).toHaveLength(2);
  });

  test('a base image\'s ECR registry that cannot be logged in to is a warning: the app\'s registry still logs in, the build goes on', () => {
    project('FROM 123456789012.dkr.ecr.us-east-1.amazonaws.com/base:1.0 AS base\nRUN echo deps\nFROM base\nCOPY . /app\n');
    hub('123456789012.dkr.ecr.us-east-1.amazonaws.com/base', '1.0', digestOf(0xba5e));
    const r = build('c1', {}, { FAKE_LOGIN_DENIED_REGION: 'us-east-1' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('WARNING: login to 123456789012.dkr.ecr.us-east-1.amazonaws.com (an image of the Dockerfile) failed');
    expect(r.calls.filter(c => c.startsWith('login '))).toEqual(['login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com']);
    // The app's own registry is required: its login failing fails the build.
    const denied = build('c2', {}, { FAKE_LOGIN_DENIED_REGION: 'eu-west-1' });
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toContain('login to 123456789012.dkr.ecr.eu-west-1.amazonaws.com failed');
  });

  test('a base image\'s ECR region that never answers a connect costs seconds, not minutes: the build goes on', () => {
    // The AWS CLI waits 60 s a connect attempt unless told, 3 attempts (ECR25): the stand-in adds up the wait it would cost.
    project('FROM 123456789012.dkr.ecr.ap-south-1.amazonaws.com/base:1.0 AS base\nRUN echo deps\nFROM base\nCOPY . /app\n');
    hub('123456789012.dkr.ecr.ap-south-1.amazonaws.com/base', '1.0', digestOf(0xba5e));
    const r = build('c1', {}, { FAKE_UNREACHABLE_REGION: 'ap-south-1' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('WARNING: login to 123456789012.dkr.ecr.ap-south-1.amazonaws.com (an image of the Dockerfile) failed');
    const waited = fs.readFileSync(path.join(tmp, 'calls.waited'), 'utf8').split('\n').filter(Boolean);
    // Each process asks a region once, the login once more after a failed ask: a wait of 30 s each at most.
    expect(waited.length).toBeGreaterThan(0);
    expect(new Set(waited)).toEqual(new Set(['30']));
  });

  test.each(['registry', 'inline'] as const)('%s under bash -x, as CodeBuild runs the phases: no password, secret or token is traced, and the trace goes on after each', strategy => {
    // A base on Docker Hub (an anonymous token), one in ECR, and a build secret.
    project(`FROM node:20 AS tools\nFROM ${BASE} AS base\nRUN --mount=type=secret,id=npm echo deps\nFROM base\nCOPY --from=tools /t /t\nCOPY . /app\n`);
    hub('registry-1.docker.io/library/node', '20', digestOf(0x20));
    const bs = new BuildScript({ strategy, context: 'p', dockerfile: 'p/Dockerfile', buildSecretEnv: { npm: 'NPM_TOKEN' } });
    fs.writeFileSync(path.join(tmp, 's.sh'), bs.renderScript());
    const traced = (tag: string): string => ['setup login refs', 'build cache', 'report'].map(steps => {
      const p = spawnSync(BASH, ['-x', path.join(tmp, 's.sh'), ...steps.split(' ')], {
        cwd: tmp, encoding: 'utf8',
        env: { ...fakeEnv('buildkit-mixed.log'), APP_REPOSITORY_URI: APP, CACHE_REPOSITORY_URI: CACHE, ...bs.environment(),
          IMAGE_TAG: tag, CACHE_BRANCH: 'main', CIB_WORK_DIR: path.join(tmp, `work-${tag}`), NPM_TOKEN: 'NPM-SECRET-VALUE' },
      });
      expect({ steps, status: p.status }).toEqual({ steps, status: 0 });
      return p.stderr;
    }).join('');
    const first = traced('c1');
    expect(records()).toHaveLength(1);
    // Traced after each use: the login, the skip's requests (an anonymous token, the ECR password in a new process), the
    // secret's file, the record's password (asked again in the build phase's process) and its requests.
    expect(first).toMatch(/^\++ cib_step_refs$/m);
    expect(first).toMatch(/^\++ cib_remote_digest 123456789012\.dkr\.ecr\.eu-west-1\.amazonaws\.com\/app:cib-inputs-/m);
    expect(first).toMatch(/^\++ cib_engine_build$/m);
    expect(first).toMatch(/^\++ cib_retag /m);
    expect(first).toMatch(/^\++ cib_step_report$/m);
    const second = traced('c2');
    expect(second).toMatch(/^\++ cib_state_set IMAGE_REUSED true$/m);
    for (const secret of ['TOP-SECRET', 'NPM-SECRET-VALUE', 'anon.']) expect({ secret, traced: (first + second).includes(secret) }).toEqual({ secret, traced: false });
  });

  test('the script\'s own state is never taken from the environment', () => {
    project();
    // A stale password for the app's registry, a buildx answer, a store and a fallback no step of this build set.
    const r = build('c1', {}, {
      FAKE_STORE: 'classic', FAKE_DRIVER: 'docker-container', CIB_ECR_PASSWORD: 'stale', CIB_ECR_PASSWORDS: 'stale',
      CIB_HAS_BUILDX: '0', CIB_CONTAINERD_STORE: '1', CIB_FALLBACK: 'inline', CIB_RECORD_PID: '1', CIB_BUILDER: 'stale-builder',
    });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toContain('WARNING');
    // Recorded (no fallback), with the login's password; pushed by the builder (no store=false: not the containerd store).
    expect(records()).toHaveLength(1);
    expect(r.calls.find(c => c.startsWith('buildx build') && c.includes(`--output type=image,name=${APP}:c1,push=true,compression=gzip,force-compression=true`)))
      .toBeDefined();
    expect(r.calls.some(c => c.includes('store=false'))).toBe(false);
    // The cache bytes are read with buildx (the snapshot and the count); the current builder, not one named before.
    expect(r.calls.some(c => c.startsWith('buildx imagetools inspect'))).toBe(true);
    expect(r.calls.some(c => c.includes('stale-builder'))).toBe(false);
    // An earlier build's exports in the environment (after an eval of its output) are not this build's: a retag counts no step.
    const earlier = Object.fromEntries(Object.entries(r.exports).filter(([k]) => k.startsWith('CACHE_') || k === 'BUILD_SECONDS'));
    expect(earlier.CACHE_STEPS_TOTAL).toBe('3');
    const reused = build('c2', {}, { ...earlier, CIB_INPUTS_TAG: 'cib-inputs-stale' });
    expect(reused.exports).toMatchObject({ IMAGE_REUSED: 'true', CACHE_STEPS_TOTAL: '0', CACHE_STEPS_CACHED: '0' });
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'work-c2', 'cache-report.json'), 'utf8'))).toMatchObject({ stepsTotal: 0, stepsCached: 0 });
  });

  test('buildah: the digest its push wrote is the one recorded and tagged', () => {
    project();
    const env = { FAKE_BUILDAH_LOGS: path.join(FIXTURES, 'logs', 'real-buildah-steps-pulled.log') };
    const first = build('c1', { strategy: 'buildah' }, env);
    expect(first.status).toBe(0);
    const second = build('c2', { strategy: 'buildah' }, env);
    expect(second.status).toBe(0);
    expect(second.calls.filter(c => c.startsWith('buildah build') || c.startsWith('buildah push'))).toEqual([]);
    expect(second.exports).toMatchObject({ IMAGE_REUSED: 'true', IMAGE_DIGEST: first.exports.IMAGE_DIGEST });
  });

  test('every input counts: a context file, the Dockerfile, a build arg, the target, the platform, the base image\'s digest', () => {
    project();
    expect(build('c1').exports.IMAGE_REUSED).toBe('false');
    const changes: Array<[string, () => void, Partial<BuildScriptOptions>]> = [
      ['a context file', () => write('src/app.txt', 'v2\n'), {}],
      ['a mode', () => fs.chmodSync(at('src/app.txt'), 0o755), {}],
      ['a new empty directory', () => fs.mkdirSync(at('src/empty')), {}],
      ['the Dockerfile', () => write('Dockerfile', `FROM ${BASE} AS base\nRUN echo deps \nFROM base\nCOPY . /app\n`), {}],
      ['a build arg', () => undefined, { buildArgs: { A: '1' } }],
      ['a build arg value', () => undefined, { buildArgs: { A: '2' } }],
      ['the target', () => undefined, { target: 'base' }],
      ['the platform', () => undefined, { platform: 'linux/arm64' }],
      // Without it, the same inputs as the Dockerfile's build: the app push forced to gzip or not can make another image.
      ['the cache compression', () => undefined, { cacheCompression: 'gzip' }],
      ['the base image', () => setBase(digestOf(0xba5f)), {}],
    ];
    let n = 1;
    for (const [what, change, options] of changes) {
      change();
      const r = build(`c${++n}`, options);
      expect([what, r.status, r.exports.IMAGE_REUSED]).toEqual([what, 0, 'false']);
    }
    expect(records()).toHaveLength(changes.length + 1);
    // Back to the first inputs: the first image again.
    write('Dockerfile', `FROM ${BASE} AS base\nRUN echo deps\nFROM base\nCOPY . /app\n`);
    write('src/app.txt', 'v1\n');
    fs.chmodSync(at('src/app.txt'), 0o644);
    fs.rmdirSync(at('src/empty'));
    setBase(digestOf(0xba5e));
    const back = build('back');
    expect(back.exports).toMatchObject({ IMAGE_REUSED: 'true' });
  });

  test('.dockerignore: a path a line names literally is left out; a glob, or any exception line, leaves nothing out', () => {
    project();
    write('.dockerignore', '# generated\n/docs/\nbuild\n*.md\n');
    write('docs/guide.txt', 'a\n');
    write('README.md', 'a\n');
    expect(build('c1').exports.IMAGE_REUSED).toBe('false');
    write('docs/guide.txt', 'b\n');
    write('build', 'output\n');
    expect(build('c2').exports.IMAGE_REUSED).toBe('true');
    // *.md is a glob: README.md counts (a wrong skip is worse than a build).
    write('README.md', 'b\n');
    expect(build('c3').exports.IMAGE_REUSED).toBe('false');
    // The ignore file itself always counts: what it leaves out changes what the engine sees.
    write('.dockerignore', '/docs/\nbuild\n');
    expect(build('c4').exports.IMAGE_REUSED).toBe('false');
    write('.dockerignore', '/docs/\nbuild\n!docs/keep.txt\n');
    expect(build('c5').exports.IMAGE_REUSED).toBe('false');
    write('docs/guide.txt', 'c\n');
    expect(build('c6').exports.IMAGE_REUSED).toBe('false');
    // buildah reads a .containerignore first: with one, nothing is left out either.
    write('.dockerignore', '/docs/\n');
    write('.containerignore', '/docs/\n');
    expect(build('c7').exports.IMAGE_REUSED).toBe('false');
    write('docs/guide.txt', 'd\n');
    expect(build('c8').exports.IMAGE_REUSED).toBe('false');
  });

  test.each([
    ['a Docker Hub tag that does not exist', 'FROM node:20\n', 'the image node:20 could not be read anonymously from registry-1.docker.io'],
    ['a private image elsewhere', 'FROM ghcr.io/acme/base:1\n', 'the image ghcr.io/acme/base:1 could not be read anonymously from ghcr.io'],
    ['a variable', 'ARG BASE=x\nFROM $BASE\n', "a variable in the image reference '$BASE' (FROM)"],
    ['a remote ADD', `FROM ${BASE}\nADD https://example.com/a.tgz /a\n`, 'an ADD source that may be remote or a variable (https://example.com/a.tgz)'],
    ['an escape directive', `# escape=\`\nFROM ${BASE}\n`, 'an escape directive'],
    ['a COPY --from image that cannot be read', `FROM ${BASE}\nCOPY --from=busybox:1 /bin/sh /sh\n`, 'the image busybox:1 could not be read'],
    ['a # syntax frontend that cannot be read', `# syntax=docker/dockerfile:1\nFROM ${BASE}\n`, 'the image docker/dockerfile:1 could not be read'],
    ['a digest of another algorithm', `FROM node@sha512:${'a'.repeat(128)}\n`, 'names a digest that is not sha256'],
    ['a base whose tag is gone', `FROM ${HOST}/base:2.0\n`, `the digest of the image ${HOST}/base:2.0 could not be read`],
  ])('inputs that cannot be known (%s) mean a build, and the log says why', (_, dockerfile, why) => {
    project(dockerfile);
    const r = build('c1');
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`inputs: not known (`);
    expect(r.stderr).toContain(why);
    expect(records()).toEqual([]);
  });

  test('Docker Hub and other registries: the tag\'s digest with an anonymous pull token (on curl\'s stdin); a moved tag builds', () => {
    const hub = (repo: string, tag: string, digest: string): void => {
      fs.mkdirSync(path.join(tmp, 'registry', repo), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'registry', repo, tag), `${digest}\n`);
    };
    hub('registry-1.docker.io/library/node', '20', digestOf(0x20));
    hub('registry-1.docker.io/docker/dockerfile', '1', digestOf(0xdf));
    hub('ghcr.io/acme/tools', 'latest', digestOf(0x70));
    project(`# syntax=docker/dockerfile:1\nFROM node:20 AS base\nCOPY --from=ghcr.io/acme/tools /t /t\nFROM docker.io/library/node:20\n`);
    expect(build('c1').exports.IMAGE_REUSED).toBe('false');
    const second = build('c2');
    expect(second.exports.IMAGE_REUSED).toBe('true');
    const requests = second.calls.filter(c => /docker\.io|ghcr\.io/.test(c));
    // Per reference (sorted): a HEAD (401), the token, the HEAD with it; node:20 and docker.io/library/node:20 are each asked.
    expect(requests.filter(c => c.includes('/token'))).toEqual([
      expect.stringContaining('service=registry-1.docker.io --data-urlencode scope=repository:library/node:pull https://auth.registry-1.docker.io/token'),
      expect.stringContaining('service=registry-1.docker.io --data-urlencode scope=repository:docker/dockerfile:pull https://auth.registry-1.docker.io/token'),
      expect.stringContaining('service=ghcr.io --data-urlencode scope=repository:acme/tools:pull https://auth.ghcr.io/token'),
      expect.stringContaining('service=registry-1.docker.io --data-urlencode scope=repository:library/node:pull https://auth.registry-1.docker.io/token'),
    ]);
    expect(requests.filter(c => c.includes('/manifests/'))).toHaveLength(8);
    expect(second.calls.join('\n')).not.toContain('anon.');
    hub('registry-1.docker.io/library/node', '20', digestOf(0x21));
    expect(build('c3').exports.IMAGE_REUSED).toBe('false');
    const hidden = build('c4', {}, { FAKE_PRIVATE: 'ghcr.io/acme/tools' });
    expect(hidden.exports.IMAGE_REUSED).toBe('false');
    expect(hidden.stderr).toContain('the image ghcr.io/acme/tools could not be read anonymously from ghcr.io');
  });

  test('images pinned by digest are their digest (no request); stages, indexes and scratch are not images', () => {
    const pinned = `node@sha256:${'a'.repeat(64)}`;
    project([
      `# syntax=docker/dockerfile:1@sha256:${'b'.repeat(64)}`, `FROM ${pinned} AS Deps`, 'RUN --mount=type=cache,target=/x \\',
      '  # a comment inside the continuation', '  --mount=from=deps,source=/a,target=/b true', `FROM scratch`,
      'COPY --from=DEPS /a /a', 'COPY --from=0 /a /b', '',
    ].join('\n'));
    expect(build('c1').exports.IMAGE_REUSED).toBe('false');
    const second = build('c2');
    expect(second.exports.IMAGE_REUSED).toBe('true');
    expect(second.calls.filter(c => c.includes('/v2/base/') || c.includes('node') || c.includes('dockerfile'))).toEqual([]);
  });

  test('what the engine reads beyond the configuration counts too: its platform default, SOURCE_DATE_EPOCH, the RUN network, BUILDKIT_*', () => {
    project();
    expect(build('c1').exports.IMAGE_REUSED).toBe('false');
    let n = 1;
    const envs: Array<Record<string, string>> = [{ DOCKER_DEFAULT_PLATFORM: 'linux/arm64' }, { SOURCE_DATE_EPOCH: '0' }, { CIB_NETWORK: 'none' }, { BUILDKIT_PROGRESS: 'plain' }];
    for (const env of envs) {
      const r = build(`c${++n}`, {}, env);
      expect([env, r.exports.IMAGE_REUSED]).toEqual([env, 'false']);
    }
    expect(build('same').exports.IMAGE_REUSED).toBe('true');
    // A frontend named by the BUILDKIT_SYNTAX build arg is an image like a # syntax line's.
    const syntax = build('syntax', { buildArgs: { BUILDKIT_SYNTAX: 'docker/dockerfile:1' } });
    expect(syntax.stderr).toContain('the image docker/dockerfile:1 could not be read anonymously from registry-1.docker.io');
  });

  test('a build whose inputs are recorded builds with --pull (not on an older base in the engine\'s store); without the skip, as before', () => {
    project();
    const first = build('c1');
    expect(first.calls.find(c => c.startsWith('buildx build') && c.includes('push=true'))).toContain(' --pull');
    const off = build('c2', { skipUnchangedBuilds: false });
    expect(off.calls.filter(c => c.startsWith('buildx build')).every(c => !c.includes('--pull'))).toBe(true);
  });

  test('the registry strategy\'s inline fallback builds another image: its inputs are not recorded', () => {
    project();
    const r = build('c1', {}, { FAKE_STORE: 'classic', FAKE_BOOTSTRAP_RC: '1' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('inputs not recorded: the image was built by the inline fallback, not the registry strategy');
    expect(records()).toEqual([]);
  });

  test('a context that cannot be listed (no GNU find) is not known: a build, no error', () => {
    project();
    const bin = path.join(tmp, 'busybox-find');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'find'), '#!/bin/sh\nfor a in "$@"; do [ "$a" = -printf ] && { echo "find: unrecognized: -printf" >&2; exit 1; }; done\nexec /usr/bin/find "$@"\n', { mode: 0o755 });
    const r = build('c1', {}, { PATH: `${bin}:${FIXTURES}/bin:/usr/bin:/bin` });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('inputs: not known (the build context could not be listed (GNU find is needed)): building');
    expect(r.stderr).not.toContain('[cached-build] ERROR');
    expect(records()).toEqual([]);
  });

  test('.dockerignore with a byte outside printable ASCII, or a symlink, leaves nothing out', () => {
    project();
    write('.dockerignore', '\uFEFFdocs\n');
    write('docs/a.txt', 'a\n');
    expect(build('c1').exports.IMAGE_REUSED).toBe('false');
    write('docs/a.txt', 'b\n');
    expect(build('c2').exports.IMAGE_REUSED).toBe('false');
    fs.rmSync(at('.dockerignore'));
    write('ignore.txt', 'docs\n');
    fs.symlinkSync('ignore.txt', at('.dockerignore'));
    expect(build('c3').exports.IMAGE_REUSED).toBe('false');
    write('docs/a.txt', 'c\n');
    expect(build('c4').exports.IMAGE_REUSED).toBe('false');
  });

  test('the engine\'s version and the script itself count: an upgrade of either builds', () => {
    project();
    expect(build('c1').exports.IMAGE_REUSED).toBe('false');
    expect(build('c2', {}, { FAKE_DOCKER_VERSION: '26.1.6' }).exports.IMAGE_REUSED).toBe('false');
    expect(build('c3', {}, { FAKE_DOCKER_VERSION: '26.1.6' }).exports.IMAGE_REUSED).toBe('true');
    // Another strategy is another script.
    expect(build('c4', { strategy: 'inline' }, { FAKE_DOCKER_VERSION: '26.1.6' }).exports.IMAGE_REUSED).toBe('false');
  });

  test('buildah: an image named without a registry is not known (buildah resolves short names through registries.conf)', () => {
    project('FROM node:20\n');
    const r = build('c1', { strategy: 'buildah' }, { FAKE_BUILDAH_LOGS: path.join(FIXTURES, 'logs', 'real-buildah-steps-pulled.log') });
    expect(r.stderr).toContain('the image node:20 names no registry, and buildah resolves such names through its registries.conf');
  });

  test('BuildKit\'s log names another digest for a base (a registry mirror, a local copy): the inputs are not recorded', () => {
    project();
    const log = path.join(tmp, 'other-base.log');
    fs.writeFileSync(log, fs.readFileSync(path.join(FIXTURES, 'logs', 'buildkit-mixed.log'), 'utf8')
      .replace(/#3 \[1\/4\] FROM \S+/, `#3 [1/4] FROM ${BASE}@${digestOf(0xbad)}`));
    const r = run({ context: 'p', dockerfile: 'p/Dockerfile' }, { CACHE_BRANCH: 'main', IMAGE_TAG: 'c1', FAKE_LOG: log }, 'buildkit-mixed.log', true);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`the engine built on ${BASE}@${digestOf(0xbad)}, not on ${digestOf(0xba5e)}: inputs not recorded`);
    expect(records()).toEqual([]);
    // The same log naming the digest the inputs have: recorded.
    fs.writeFileSync(log, fs.readFileSync(log, 'utf8').replace(digestOf(0xbad), digestOf(0xba5e)));
    build('c2', {}, { FAKE_LOG: log });
    expect(records()).toHaveLength(1);
  });

  test('--pull is the build\'s only: the cache export builds what the build built', () => {
    project();
    const r = build('c1');
    expect(cacheTo(r)).toHaveLength(1);
    expect(cacheTo(r)[0]).not.toContain('--pull');
  });

  test('behind an HTTPS proxy (its CONNECT answer first in the headers) the skip works the same', () => {
    project();
    expect(build('c1', {}, { FAKE_PROXY: '1' }).exports.IMAGE_REUSED).toBe('false');
    expect(build('c2', {}, { FAKE_PROXY: '1' }).exports.IMAGE_REUSED).toBe('true');
  });

  test('a retag the registry took but whose answer was lost is a retag, not a build that pushes to a taken immutable tag', () => {
    project();
    const first = build('c1');
    const r = build('c2', {}, { FAKE_PUT_ANSWER_LOST: '1' });
    expect(r.status).toBe(0);
    expect(r.exports).toMatchObject({ IMAGE_REUSED: 'true', IMAGE_DIGEST: first.exports.IMAGE_DIGEST });
    expect(engineCalls(r)).toEqual([]);
  });

  test('a retag ECR refuses (1000 tags on the image) means a build, with the reason', () => {
    project();
    build('c1');
    // The image has its commit tag and its record: two tags.
    const r = build('c2', {}, { FAKE_MAX_TAGS: '2' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('exceeds the maximum allowed number of tags per image');
    expect(r.stderr).toContain('inputs unchanged, but');
    expect(r.exports.IMAGE_REUSED).toBe('false');
    expect(engineCalls(r).length).toBeGreaterThan(0);
  });

  test('off (skipUnchangedBuilds: false, CIB_SKIP_UNCHANGED=false) every commit builds and nothing is recorded; a bad value is refused', () => {
    project();
    expect(build('c1', { skipUnchangedBuilds: false }).exports.IMAGE_REUSED).toBe('false');
    expect(build('c2', { skipUnchangedBuilds: false }).exports.IMAGE_REUSED).toBe('false');
    expect(build('c3', {}, { CIB_SKIP_UNCHANGED: 'false' }).exports.IMAGE_REUSED).toBe('false');
    expect(records()).toEqual([]);
    const bad = build('c4', {}, { CIB_SKIP_UNCHANGED: 'yes' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("CIB_SKIP_UNCHANGED must be true or false, got 'yes'");
  });

  test('a record that cannot be written costs only a later skip; a base that moved during the build is not recorded', () => {
    project();
    // The image has one tag, its commit's: with one tag allowed, the record is refused.
    const refused = build('c1', {}, { FAKE_MAX_TAGS: '1' });
    expect(refused.status).toBe(0);
    expect(refused.stderr).toContain('WARNING: inputs not recorded (');
    expect(records()).toEqual([]);
    expect(build('c2').exports.IMAGE_REUSED).toBe('false');
    // The base's tag moves while the engine builds: the image may be of either base, so its inputs are not recorded.
    write('src/app.txt', 'v3\n');
    const moved = build('c3', {}, { FAKE_DURING_BUILD: `printf '%s\\n' ${digestOf(0xba60)} > ${path.join(tmp, 'registry', HOST, 'base', '1.0')}` });
    expect(moved.status).toBe(0);
    expect(moved.stderr).toContain('WARNING: inputs changed while the image was built (a base image\'s tag moved?): not recorded');
    expect(records()).toHaveLength(1);
  });
});
