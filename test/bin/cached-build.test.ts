import { spawnSync } from 'child_process';
import * as path from 'path';
import { parse } from 'yaml';
import { runCli } from '../../bin/cached-build';
import { BuildScript } from '../../lib/build-script/build-script';

describe('cached-build CLI', () => {
  test('script prints the standalone script of the chosen strategy', () => {
    const r = runCli(['script', '--strategy', 'buildah']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(new BuildScript({ strategy: 'buildah' }).renderScript());
  });

  test('buildspec prints a self-contained buildspec.yml: the script, and the flags as env.variables', () => {
    const r = runCli(['buildspec', '--app-repo', '127.0.0.1:5000/app', '--target', 'prod']);
    expect(r.exitCode).toBe(0);
    const bs = new BuildScript({ strategy: 'registry' });
    expect(parse(r.stdout)).toEqual(bs.renderBuildSpecObject(undefined, {
      APP_REPOSITORY_URI: '127.0.0.1:5000/app', CIB_DOCKERFILE: 'Dockerfile', CIB_CONTEXT: '.', CIB_TARGET: 'prod',
    }));
    // Longer than CodeBuild takes inline: said on stderr, with what to do.
    expect(r.stdout.length).toBeGreaterThan(25_600);
    expect(r.stderr).toMatch(/^cached-build: note: this buildspec is \d+ characters: commit it as a file in your source \(buildspec.yml\)/);
  });

  test('env prints every flag as the variable the script reads', () => {
    const r = runCli(['env', '--strategy', 'inline', '--app-repo', 'r/app', '--cache-repo=r/cache', '--dockerfile', 'docker/Dockerfile',
      '--context', 'app', '--default-branch', 'trunk', '--read-only-branch', 'pr-*', '--read-only-branch', 'dependabot/*', '--no-cache-write',
      '--build-arg', 'A=1=2', '--target', 'prod', '--platform', 'linux/arm64', '--buildkit-image', 'r/buildkit:1', '--no-reuse-existing-image',
      '--no-skip-unchanged']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'APP_REPOSITORY_URI=r/app', 'CACHE_REPOSITORY_URI=r/cache', 'CIB_DOCKERFILE=docker/Dockerfile', 'CIB_CONTEXT=app',
      'CIB_DEFAULT_BRANCH=trunk', 'CIB_READ_ONLY_BRANCHES=pr-* dependabot/*', 'CIB_CACHE_WRITE=false', 'CIB_BUILD_ARG_A=1=2',
      'CIB_TARGET=prod', 'CIB_PLATFORM=linux/arm64', 'CIB_BUILDKIT_IMAGE=r/buildkit:1', 'CIB_REUSE_EXISTING_IMAGE=false',
      'CIB_SKIP_UNCHANGED=false', '',
    ]);
  });

  test('--cache-compression: gzip is a variable, zstd (the default) none', () => {
    expect(runCli(['env', '--cache-compression', 'gzip']).stdout.split('\n')).toContain('CIB_CACHE_COMPRESSION=gzip');
    const zstd = runCli(['env', '--cache-compression=zstd']);
    expect(zstd.exitCode).toBe(0);
    expect(zstd.stdout).not.toContain('CIB_CACHE_COMPRESSION');
  });

  test('the native multi-platform path: each platform\'s env, then the merge\'s buildspec', () => {
    const arm = runCli(['env', '--app-repo', 'r/app', '--cache-repo', 'r/cache', '--platform', 'linux/arm64', '--platform-tags', '--image-name', 'linux-arm64']);
    expect(arm.stdout.split('\n')).toEqual(expect.arrayContaining(['CIB_PLATFORM=linux/arm64', 'CIB_PLATFORM_TAGS=true', 'CIB_IMAGE_NAME=linux-arm64']));
    const merge = runCli(['buildspec', '--app-repo', 'r/app', '--merge-platforms', 'linux/amd64,linux/arm64']);
    expect(merge.exitCode).toBe(0);
    const bs = new BuildScript({ strategy: 'registry' });
    expect(parse(merge.stdout)).toEqual(bs.renderMergeBuildSpecObject(undefined, {
      APP_REPOSITORY_URI: 'r/app', CIB_MERGE_PLATFORMS: 'linux/amd64 linux/arm64',
    }));
    expect(parse(merge.stdout).phases.build.commands).toEqual(['bash "$CIB_SCRIPT" merge']);
  });

  test('--help prints the usage and exits 0', () => {
    const r = runCli(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('--strategy registry|inline|buildah');
  });

  test.each([
    [[], /missing command/],
    [['deploy'], /unknown command 'deploy'/],
    [['script', '--strategy', 'kaniko'], /--strategy must be one of registry, inline, buildah, got 'kaniko'/],
    [['script', '--strategy'], /--strategy needs a value/],
    [['script', '--strategy', '--app-repo', 'x'], /--strategy needs a value/],
    [['env', '--app-repo', 'https://x/app'], /--app-repo must be a repository URI .* got 'https:\/\/x\/app'/],
    [['env', '--cache-repo', 'r/cache:latest'], /--cache-repo must be a repository URI .* got 'r\/cache:latest'/],
    [['env', '--dockerfile', '/abs/Dockerfile'], /--dockerfile must be relative to the source root, got '\/abs\/Dockerfile'/],
    [['env', '--context', '../up'], /--context must stay inside the source root, got '..\/up'/],
    [['env', '--context', '-'], /--context must not start with -, got '-'/],
    [['buildspec', '--context=--help-me'], /--context must not start with -, got '--help-me'/],
    [['env', '--default-branch', 'a..b'], /--default-branch 'a..b' is not a valid branch name/],
    [['env', '--build-arg', 'novalue'], /--build-arg must be KEY=VALUE .* got 'novalue'/],
    [['env', '--build-arg', 'A=line\nbreak'], /--build-arg must be one line, got "A=line\\nbreak"/],
    [['env', '--buildkit-image', 'moby/buildkit\n:x'], /--buildkit-image must be one line/],
    [['env', '--buildkit-image', '-x'], /--buildkit-image must be an image reference, got '-x'/],
    [['env', '--cache-compression', 'brotli'], /--cache-compression must be zstd or gzip, got 'brotli'/],
    [['env', '--strategy', 'inline', '--cache-compression', 'gzip'], /--cache-compression is the registry strategy's \(its cache export\), got --strategy inline/],
    [['env', '--read-only-branch', 'a b'], /--read-only-branch must be a glob without whitespace, got 'a b'/],
    [['env', '--platform', 'amd64'], /--platform must look like linux\/amd64, got 'amd64'/],
    [['env', '--platform', 'linux/amd64,linux/arm64', '--strategy', 'buildah'],
      /--platform 'linux\/amd64,linux\/arm64' names several platforms: only --strategy registry builds .*, got --strategy buildah/,
    ],
    [['env', '--platform', 'linux/386,linux/386'], /--platform 'linux\/386,linux\/386' names linux\/386 twice/],
    [['env', '--target', 'a b'], /--target must be a stage name, got 'a b'/],
    [['script', '--strategy', 'inline', '--strategy', 'registry'], /--strategy given twice/],
    [['env', '--no-cache-write=yes'], /--no-cache-write takes no value/],
    [['env', '--no-skip-unchanged=1'], /--no-skip-unchanged takes no value/],
    [['script', '--frobnicate'], /unknown flag '--frobnicate'/],
    [['script', 'extra'], /unexpected argument 'extra'/],
    [['env', '--dockerfile='], /--dockerfile must not be empty/],
    [['env', '--image-name', 'Api'], /--image-name must be 1-32 of a-z 0-9 with single . _ - between, got 'Api'/],
    [['env', '--platform-tags'], /--platform-tags tags one platform's image <tag>--<os>-<arch>: give one --platform, got ''/],
    [['env', '--platform-tags', '--platform', 'linux/amd64,linux/386'], /give one --platform, got 'linux\/amd64,linux\/386'/],
    [['env', '--merge-platforms', 'linux/amd64'], /--merge-platforms must name two or more platforms \(one index of them\), got 'linux\/amd64'/],
    [['env', '--merge-platforms', 'linux/amd64,arm64'], /--merge-platforms must be platforms like linux\/amd64,linux\/arm64, got 'arm64' in/],
    [['env', '--merge-platforms', 'linux/386,linux/386'], /--merge-platforms 'linux\/386,linux\/386' names linux\/386 twice/],
    [['buildspec', '--merge-platforms', 'linux/amd64,linux/386', '--target', 'x'],
      /--merge-platforms describes the merge build, which builds nothing: --target belong to the platforms' builds/],
    [['script', '--target', 'prod'], /script takes --strategy only: the script reads its configuration from the environment; print the variables for --target with 'cached-build env'/],
  ])('%j is refused with exit 2', (argv, message) => {
    const r = runCli(argv);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain("Run 'cached-build --help'");
  });

  test('the executable exits 2 on a bad flag and prints a script otherwise', () => {
    const bin = path.join(__dirname, '..', '..', 'bin', 'cached-build.ts');
    const tsnode = path.join(__dirname, '..', '..', 'node_modules', '.bin', 'ts-node');
    const bad = spawnSync(tsnode, ['--transpile-only', bin, 'script', '--strategy', 'nope'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("got 'nope'");
    const ok = spawnSync(tsnode, ['--transpile-only', bin, 'script'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout.startsWith('#!/usr/bin/env bash')).toBe(true);
  });
});
