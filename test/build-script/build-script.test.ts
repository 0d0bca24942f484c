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

/**
 * Every `\"` inside a command substitution that is itself inside double quotes ("$(… \" …)", at any depth), by line: bash
 * before 4.4 (Amazon Linux 2's 4.2) reads it otherwise than bash 5. Also whether the scan ended where it began (a quote or
 * substitution it could not follow).
 */
function quotedSubstitutionEscapes(script: string): { lines: number[]; balanced: boolean } {
  interface Frame { kind: 'top' | 'dq' | 'cs' | 'pe'; depth: number; inDq: boolean }
  const stack: Frame[] = [{ kind: 'top', depth: 0, inDq: false }];
  const lines: number[] = [];
  let line = 1;
  let wordStart = true;
  const skipTo = (i: number, end: number): number => {
    for (let k = i + 1; k < end; k++) if (script[k] === '\n') line++;
    return end;
  };
  for (let i = 0; i < script.length; i++) {
    const c = script[i];
    const next = script[i + 1];
    const top = stack[stack.length - 1];
    if (c === '\n') line++;
    if (top.kind === 'top' || top.kind === 'cs') {
      if (c === '#' && wordStart) {
        const end = script.indexOf('\n', i);
        i = (end < 0 ? script.length : end) - 1;
        continue;
      }
      wordStart = /[\s;&|()]/.test(c);
      if (c === '\\') {
        if (top.inDq && next === '"') lines.push(line);
        if (next === '\n') line++;
        i++;
      } else if (c === "'") {
        // bash 4.2 takes the backslash out of a \" even inside single quotes there (an awk program's printf).
        const end = script.indexOf("'", i + 1);
        if (top.inDq && script.slice(i, end).includes('\\"')) lines.push(line);
        i = skipTo(i, end);
      } else if (c === '"') {
        stack.push({ kind: 'dq', depth: 0, inDq: top.inDq });
      } else if (c === '$' && next === '(') {
        stack.push({ kind: 'cs', depth: 0, inDq: top.inDq });
        i++;
      } else if (c === '$' && next === '{') {
        stack.push({ kind: 'pe', depth: 0, inDq: top.inDq });
        i++;
      } else if (c === '(' && top.kind === 'cs') {
        top.depth++;
      } else if (c === ')' && top.kind === 'cs') {
        if (top.depth === 0) stack.pop();
        else top.depth--;
      }
    } else if (top.kind === 'dq') {
      if (c === '\\') {
        if (top.inDq && next === '"') lines.push(line);
        i++;
      } else if (c === '"') {
        stack.pop();
      } else if (c === '$' && next === '(') {
        stack.push({ kind: 'cs', depth: 0, inDq: true });
        i++;
      } else if (c === '$' && next === '{') {
        stack.push({ kind: 'pe', depth: 0, inDq: true });
        i++;
      }
    } else {
      // ${…}: a quote opens a nested string, a brace nests, the closing brace ends it. Only command substitutions are
      // checked: a \" in a word of ${…:+word} is another construct, not known to differ on bash 4.2.
      if (c === '\\') {
        i++;
      } else if (c === '"') {
        stack.push({ kind: 'dq', depth: 0, inDq: false });
      } else if (c === '$' && next === '(') {
        stack.push({ kind: 'cs', depth: 0, inDq: top.inDq });
        i++;
      } else if (c === '{') {
        top.depth++;
      } else if (c === '}') {
        if (top.depth === 0) stack.pop();
        else top.depth--;
      }
    }
  }
  return { lines, balanced: stack.length === 1 };
}

describe('no \\" inside a double-quoted $(…) (bash 4.2 takes its backslash out, even inside single quotes there)', () => {
  test('the scan finds the construct bash 4.2 broke (the report\'s platforms JSON, before it was fixed), and nothing else', () => {
    const broken = String.raw`printf '"platforms":[%s],' "$(cib_platform_counts | awk '{ printf "%s{\"platform\":\"%s\"}", s, $1 }')"` + '\n';
    expect(quotedSubstitutionEscapes(broken)).toEqual({ lines: [1], balanced: true });
    expect(quotedSubstitutionEscapes(String.raw`x="$(printf \"%s\" a)"` + '\n')).toEqual({ lines: [1, 1], balanced: true });
    // Fine on every bash: a \" in a plain string, in an unquoted $(…), in ${…:+word}, and a plain string in a quoted $(…).
    const fine = String.raw`a="x\"y"; b=$(printf \"a\"); c="$` + String.raw`{v:+,\"v\":\"$v\"}"; d="$(printf '%s' "e")"` + '\n';
    expect(quotedSubstitutionEscapes(fine)).toEqual({ lines: [], balanced: true });
  });
  test.each(STRATEGIES)('%s', strategy => {
    expect(quotedSubstitutionEscapes(new BuildScript({ strategy }).renderScript())).toEqual({ lines: [], balanced: true });
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
