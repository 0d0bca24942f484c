import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse } from 'yaml';
import {
  assertInlineBuildSpecFits, BuildScript, EXPORTED_VARIABLES, MAX_INLINE_BUILDSPEC_LENGTH, ScriptDelivery,
} from '../../lib/build-script/build-script';
import { configEnvironment } from '../../lib/build-script/config';
import { StrategyName } from '../../lib/build-script/engine';

const STRATEGIES: StrategyName[] = ['registry', 'inline', 'buildah'];
const DELIVERIES = [ScriptDelivery.INLINE, ScriptDelivery.S3];

describe('every rendered script passes shellcheck', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-shellcheck-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases = STRATEGIES.flatMap(s => DELIVERIES.map(d => [s, d] as const));
  test.each(cases)('%s, %s delivery', (strategy, delivery) => {
    const bs = new BuildScript({ strategy });
    const file = path.join(dir, `${strategy}.sh`);
    fs.writeFileSync(file, bs.renderScript());
    // The buildspec's commands are scripts too: check each one.
    const spec = parse(bs.renderBuildSpecYaml(delivery));
    const cmds: string[] = Object.values(spec.phases as Record<string, { commands: string[] }>).flatMap(p => p.commands);
    const cmdFile = path.join(dir, `${strategy}-${delivery}-buildspec.sh`);
    fs.writeFileSync(cmdFile, '#!/usr/bin/env bash\n' + cmds.join('\n') + '\n');
    // SC1091: the buildspec sources exports.env, which exists only at build time.
    const r = spawnSync('shellcheck', ['--severity=style', '--exclude=SC1091', file, cmdFile], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stdout).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('every rendered script runs on bash 4.2 (Amazon Linux 2)', () => {
  // bash before 4.4 treats "${a[@]}" and "${a[*]}" of an empty array as unbound under set -u: each expansion is guarded
  // (${a[@]+"${a[@]}"}, ${a[*]:-}) unless the array is never empty. The script-run tests run on such a bash with CIB_TEST_BASH.
  const NEVER_EMPTY = ['CIB_FLAGS', 'CIB_STEP_NAMES'];
  test.each(STRATEGIES)('%s', strategy => {
    const script = new BuildScript({ strategy }).renderScript();
    const unguarded = [...script.matchAll(/(\$\{[A-Za-z_][A-Za-z_0-9]*\[@\]\+)?"?\$\{([A-Za-z_][A-Za-z_0-9]*)\[([@*])\]([^}]*)\}/g)]
      .filter(m => !m[1] && !NEVER_EMPTY.includes(m[2]) && !(m[3] === '*' && m[4] === ':-'))
      .map(m => m[0]);
    expect(unguarded).toEqual([]);
  });
});

describe('the configuration as environment variables', () => {
  test('only what differs from the defaults, plus the repositories, the Dockerfile and the context', () => {
    expect(configEnvironment({})).toEqual({ CIB_DOCKERFILE: 'Dockerfile', CIB_CONTEXT: '.' });
    expect(configEnvironment({
      appRepositoryUri: 'r/app', cacheRepositoryUri: 'r/cache', dockerfile: 'docker/App Dockerfile', context: 'src dir',
      defaultBranch: 'trunk', readOnlyBranches: ['pr-*', 'dependabot/*'], cacheWrite: false, buildArgs: { NODE_ENV: 'production', Q: `a'b"c$d` },
      buildSecretEnv: { npmrc: 'CIB_SECRET_0' }, target: 'runtime', platform: 'linux/arm64', buildkitImage: 'r/buildkit:v0.13',
      containerName: 'web', metrics: false, reuseExistingImage: false,
    })).toEqual({
      APP_REPOSITORY_URI: 'r/app', CACHE_REPOSITORY_URI: 'r/cache', CIB_DOCKERFILE: 'docker/App Dockerfile', CIB_CONTEXT: 'src dir',
      CIB_DEFAULT_BRANCH: 'trunk', CIB_READ_ONLY_BRANCHES: 'pr-* dependabot/*', CIB_CACHE_WRITE: 'false',
      CIB_BUILD_ARG_NODE_ENV: 'production', CIB_BUILD_ARG_Q: `a'b"c$d`, CIB_SECRETS: 'npmrc=CIB_SECRET_0', CIB_TARGET: 'runtime',
      CIB_PLATFORM: 'linux/arm64', CIB_BUILDKIT_IMAGE: 'r/buildkit:v0.13', CIB_CONTAINER_NAME: 'web', CIB_METRICS: 'false',
      CIB_REUSE_EXISTING_IMAGE: 'false',
    });
  });
});

describe('the buildspec', () => {
  const bs = new BuildScript({ strategy: 'registry' });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed YAML document
  const inline = bs.renderBuildSpecObject(ScriptDelivery.INLINE, { CIB_TARGET: 'prod' }) as any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed YAML document
  const s3 = bs.renderBuildSpecObject(ScriptDelivery.S3) as any;

  test('is version 0.2 with bash, every exported variable, and the configuration given in env.variables', () => {
    expect(inline.version).toBe('0.2');
    expect(inline.env.shell).toBe('bash');
    expect(inline.env['exported-variables']).toEqual([...EXPORTED_VARIABLES]);
    expect(inline.env.variables).toMatchObject({ CIB_TARGET: 'prod', CIB_WORK_DIR: '/tmp/cached-build' });
  });

  test('inline delivery carries exactly the standalone script; both run the steps phase by phase', () => {
    expect(inline.phases.install.commands[0]).toContain(bs.renderScript());
    for (const spec of [inline, s3]) {
      expect(Object.keys(spec.phases)).toEqual(['install', 'pre_build', 'build', 'post_build']);
      expect(spec.phases.install.commands[1]).toBe('bash "$CIB_SCRIPT" setup');
      expect(spec.phases.pre_build.commands).toEqual(['bash "$CIB_SCRIPT" login refs']);
      expect(spec.phases.build.commands).toEqual(['bash "$CIB_SCRIPT" build cache']);
      expect(spec.phases.post_build.commands).toEqual(['bash "$CIB_SCRIPT" report', '. "$CIB_WORK_DIR/exports.env"']);
      for (const p of Object.values(spec.phases) as Array<Record<string, unknown>>) expect(p['on-failure']).toBe('ABORT');
    }
  });

  test('S3 delivery downloads the script and checks its hash, and stays a small fraction of the inline limit', () => {
    expect(s3.phases.install.commands[0]).toBe('mkdir -p "$CIB_WORK_DIR" && aws s3 cp --only-show-errors "$CIB_SCRIPT_URL" "$CIB_SCRIPT"'
      + ` && printf '%s  %s\\n' "$CIB_SCRIPT_SHA256" "$CIB_SCRIPT" | sha256sum --check --quiet -`);
    for (const strategy of STRATEGIES) {
      expect(new BuildScript({ strategy }).renderBuildSpecYaml(ScriptDelivery.S3).length).toBeLessThan(MAX_INLINE_BUILDSPEC_LENGTH / 10);
    }
    expect(bs.scriptSha256()).toMatch(/^[0-9a-f]{64}$/);
  });

  test('the YAML text parses back to the object', () => {
    expect(parse(bs.renderBuildSpecYaml(ScriptDelivery.INLINE, { CIB_TARGET: 'prod' }))).toEqual(inline);
  });

  test('a buildspec over 25,600 characters is refused with its length', () => {
    expect(() => assertInlineBuildSpecFits('x'.repeat(MAX_INLINE_BUILDSPEC_LENGTH), 'Stack/Build')).not.toThrow();
    expect(() => assertInlineBuildSpecFits('x'.repeat(MAX_INLINE_BUILDSPEC_LENGTH + 1), 'Stack/Build'))
      .toThrow('Stack/Build: the buildspec is 25601 characters; CodeBuild refuses an inline buildspec over 25600');
  });
});
