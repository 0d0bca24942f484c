import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse } from 'yaml';
import { BuildScript, BuildScriptOptions, EXPORTED_VARIABLES } from '../../lib/build-script/build-script';
import { StrategyName } from '../../lib/build-script/engine';

const STRATEGIES: StrategyName[] = ['registry', 'inline', 'buildah'];
const VARIANTS: Array<Partial<BuildScriptOptions>> = [
  {},
  {
    appRepositoryUri: '123456789012.dkr.ecr.us-east-1.amazonaws.com/app', cacheRepositoryUri: '123456789012.dkr.ecr.us-east-1.amazonaws.com/cache',
    dockerfile: 'docker/App Dockerfile', context: 'src dir', defaultBranch: 'trunk', readOnlyBranches: ['pr-*', "it's/*"],
    cacheWrite: false, buildArgs: { NODE_ENV: 'production', QUOTE: `a'b"c$d` }, buildSecretEnv: { npmrc: 'NPM_TOKEN' },
    target: 'runtime', platform: 'linux/arm64', buildkitImage: '123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/buildkit:v0.13.2',
  },
];

describe('every rendered script passes shellcheck', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-shellcheck-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases = STRATEGIES.flatMap(s => VARIANTS.map((v, i) => [s, i, v] as const));
  test.each(cases)('%s, variant %d', (strategy, i, variant) => {
    const bs = new BuildScript({ strategy, ...variant });
    const file = path.join(dir, `${strategy}-${i}.sh`);
    fs.writeFileSync(file, bs.renderScript());
    // The buildspec's commands are scripts too: check each one.
    const spec = parse(bs.renderBuildSpecYaml());
    const cmds: string[] = Object.values(spec.phases as Record<string, { commands: string[] }>).flatMap(p => p.commands);
    const cmdFile = path.join(dir, `${strategy}-${i}-buildspec.sh`);
    fs.writeFileSync(cmdFile, '#!/usr/bin/env bash\n' + cmds.join('\n') + '\n');
    // SC1091: the buildspec sources exports.env, which exists only at build time.
    const r = spawnSync('shellcheck', ['--severity=style', '--exclude=SC1091', file, cmdFile], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stdout).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('options are rendered safely', () => {
  test('values with quotes and spaces survive bash parsing', () => {
    const bs = new BuildScript({ strategy: 'registry', ...VARIANTS[1] });
    const script = bs.renderScript().split('# ---- library ----')[0];
    const r = spawnSync('bash', ['-c', `${script}\nprintf '%s\\n' "\${CIB_BUILD_ARGS[@]}" "$CIB_DOCKERFILE" "$CIB_CONTEXT" "\${CIB_READ_ONLY_BRANCHES[@]}" "\${CIB_SECRETS[@]}"`],
      { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    expect(r.stdout.split('\n')).toEqual([
      'NODE_ENV=production', `QUOTE=a'b"c$d`, 'docker/App Dockerfile', 'src dir', 'pr-*', "it's/*", 'npmrc=NPM_TOKEN', '',
    ]);
  });

  test('the environment overrides the rendered repositories', () => {
    const script = new BuildScript({ strategy: 'inline', appRepositoryUri: 'r/app' }).renderScript().split('# ---- library ----')[0];
    const r = spawnSync('bash', ['-c', `${script}\necho "$APP_REPOSITORY_URI|$CACHE_REPOSITORY_URI"`],
      { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', APP_REPOSITORY_URI: 'env/app' } });
    expect(r.stdout.trim()).toBe('env/app|');
  });
});

describe('the buildspec', () => {
  const bs = new BuildScript({ strategy: 'registry' });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed YAML document
  const spec = bs.renderBuildSpecObject() as any;

  test('is version 0.2 with bash and every exported variable', () => {
    expect(spec.version).toBe('0.2');
    expect(spec.env.shell).toBe('bash');
    expect(spec.env['exported-variables']).toEqual([...EXPORTED_VARIABLES]);
  });

  test('carries exactly the standalone script, and runs the steps phase by phase', () => {
    const install: string = spec.phases.install.commands[0];
    expect(install).toContain(bs.renderScript());
    expect(Object.keys(spec.phases)).toEqual(['install', 'pre_build', 'build', 'post_build']);
    expect(spec.phases.pre_build.commands).toEqual(['bash "$CIB_SCRIPT" login refs']);
    expect(spec.phases.build.commands).toEqual(['bash "$CIB_SCRIPT" build cache']);
    expect(spec.phases.post_build.commands).toEqual(['bash "$CIB_SCRIPT" report', '. "$CIB_WORK_DIR/exports.env"']);
    for (const p of Object.values(spec.phases) as Array<Record<string, unknown>>) expect(p['on-failure']).toBe('ABORT');
  });

  test('the YAML text parses back to the object', () => {
    expect(parse(bs.renderBuildSpecYaml())).toEqual(spec);
  });
});
