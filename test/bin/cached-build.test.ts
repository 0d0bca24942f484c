import { spawnSync } from 'child_process';
import * as path from 'path';
import { parse } from 'yaml';
import { runCli } from '../../bin/cached-build';
import { BuildScript } from '../../lib/build-script/build-script';

describe('cached-build CLI', () => {
  test('script prints the standalone script of the chosen strategy', () => {
    const r = runCli(['script', '--strategy', 'buildah', '--app-repo', '127.0.0.1:5000/app', '--cache-repo=127.0.0.1:5000/cache']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(new BuildScript({
      strategy: 'buildah', appRepositoryUri: '127.0.0.1:5000/app', cacheRepositoryUri: '127.0.0.1:5000/cache',
    }).renderScript());
  });

  test('buildspec prints buildspec.yml with the defaults', () => {
    const r = runCli(['buildspec']);
    expect(r.exitCode).toBe(0);
    expect(parse(r.stdout)).toEqual(new BuildScript({ strategy: 'registry' }).renderBuildSpecObject());
  });

  test('every flag reaches the script', () => {
    const r = runCli(['script', '--strategy', 'inline', '--dockerfile', 'docker/Dockerfile', '--context', 'app', '--default-branch', 'trunk',
      '--read-only-branch', 'pr-*', '--read-only-branch', 'dependabot/*', '--no-cache-write', '--build-arg', 'A=1=2', '--target', 'prod',
      '--platform', 'linux/arm64']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("CIB_DOCKERFILE=docker/Dockerfile\nCIB_CONTEXT=app\nCIB_DEFAULT_BRANCH=trunk\nCIB_READ_ONLY_BRANCHES=('pr-*' 'dependabot/*')");
    expect(r.stdout).toContain('CIB_CACHE_WRITE=false\nCIB_BUILD_ARGS=(A=1=2)');
    expect(r.stdout).toContain('CIB_TARGET=prod\nCIB_PLATFORM=linux/arm64');
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
    [['script', '--app-repo', 'https://x/app'], /--app-repo must be a repository URI .* got 'https:\/\/x\/app'/],
    [['script', '--cache-repo', 'r/cache:latest'], /--cache-repo must be a repository URI .* got 'r\/cache:latest'/],
    [['script', '--dockerfile', '/abs/Dockerfile'], /--dockerfile must be relative to the source root, got '\/abs\/Dockerfile'/],
    [['script', '--context', '../up'], /--context must stay inside the source root, got '..\/up'/],
    [['script', '--default-branch', 'a..b'], /--default-branch 'a..b' is not a valid branch name/],
    [['script', '--build-arg', 'novalue'], /--build-arg must be KEY=VALUE .* got 'novalue'/],
    [['script', '--platform', 'amd64'], /--platform must look like linux\/amd64, got 'amd64'/],
    [['script', '--target', 'a b'], /--target must be a stage name, got 'a b'/],
    [['script', '--strategy', 'inline', '--strategy', 'registry'], /--strategy given twice/],
    [['script', '--no-cache-write=yes'], /--no-cache-write takes no value/],
    [['script', '--frobnicate'], /unknown flag '--frobnicate'/],
    [['script', 'extra'], /unexpected argument 'extra'/],
    [['script', '--dockerfile='], /--dockerfile must not be empty/],
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
