import { Build } from '@aws-sdk/client-codebuild';
import { branchTag } from '../../../lib/build-script/cache-refs';
import { branchOfBuild, buildRecord, MAX_PAGES_PAST_WINDOW, readBuildUsage } from '../../../lambda/cache-cleanup/codebuild';
import { codeBuildError, FakeBuild, FakeCodeBuild } from '../../fakes/codebuild';
import { DAY, HOUR, NOW, stepTag } from './fixtures';

const PROJECT = 'app-build';

function build(fields: Partial<Build>, vars: Record<string, string> = {}): Build {
  return { id: 'b', startTime: new Date(NOW - HOUR), endTime: new Date(NOW), buildStatus: 'SUCCEEDED', buildComplete: true,
    exportedEnvironmentVariables: Object.entries(vars).map(([name, value]) => ({ name, value })), ...fields };
}

/** `n` finished builds of main an hour apart, the newest (k = 0) ending at NOW, each reading `main` and ref `r<k>`; oldest first. */
function history(n: number): FakeBuild[] {
  return Array.from({ length: n }, (_, i) => {
    const k = n - 1 - i;
    return {
      id: `${PROJECT}:${k}`, startTime: NOW - k * HOUR - 60_000, endTime: NOW - k * HOUR,
      exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: `main,r${k}` }],
    };
  });
}

describe('branchOfBuild: the build script\'s rule, as far as BatchGetBuilds shows it', () => {
  const env = (value: string, type?: 'PLAINTEXT' | 'PARAMETER_STORE') => ({ environment: {
    type: 'LINUX_CONTAINER' as const, image: 'x', computeType: 'BUILD_GENERAL1_SMALL' as const, environmentVariables: [{ name: 'CACHE_BRANCH', value, type }],
  } });

  test('CACHE_BRANCH first (a plain-text value; the last one, a StartBuild override, wins)', () => {
    expect(branchOfBuild(build({ ...env('feature/x'), sourceVersion: 'refs/heads/other' }))).toBe('feature/x');
    expect(branchOfBuild(build({ ...env('/params/branch', 'PARAMETER_STORE'), sourceVersion: 'refs/heads/other' }))).toBe('other');
    const both = env('project-default');
    both.environment.environmentVariables.push({ name: 'CACHE_BRANCH', value: 'from-pipeline', type: undefined });
    expect(branchOfBuild(build(both))).toBe('from-pipeline');
  });

  test('then a branch in sourceVersion; not an artifact ARN, a pull request, another ref or a commit', () => {
    expect(branchOfBuild(build({ sourceVersion: 'refs/heads/feature/y' }))).toBe('feature/y');
    expect(branchOfBuild(build({ sourceVersion: 'develop' }))).toBe('develop');
    for (const sourceVersion of ['arn:aws:s3:::bucket/SourceArti/abc.zip', 'pr/42', 'refs/tags/v1', 'a'.repeat(40), '', undefined]) {
      expect(branchOfBuild(build({ sourceVersion }))).toBeUndefined();
    }
  });
});

describe('buildRecord', () => {
  test('a finished build: the refs it read and wrote, at its end; registry and inline builds name their branch in their exports', () => {
    expect(buildRecord(build({}, { CACHE_REFS_READ: 'feature-x-1a2b3c4d, main', CACHE_REF_WRITTEN: 'feature-x-1a2b3c4d' }), 'main')).toEqual({
      start: NOW - HOUR, end: NOW, succeeded: true, branchTag: 'feature-x-1a2b3c4d', defaultBranchTag: 'main',
      refsRead: ['feature-x-1a2b3c4d', 'main'], refsWritten: ['feature-x-1a2b3c4d'], reused: false,
    });
  });

  test('a running build has no end and no refs yet (CB4); its branch comes from its environment or source, else the default branch', () => {
    const running = buildRecord(build({ endTime: undefined, buildStatus: 'IN_PROGRESS', buildComplete: false, exportedEnvironmentVariables: undefined,
      sourceVersion: 'refs/heads/feature/z' }), 'main');
    expect(running).toMatchObject({ end: undefined, succeeded: false, branchTag: branchTag('feature/z'), refsRead: [], refsWritten: [] });
    expect(buildRecord(build({ sourceVersion: 'arn:aws:s3:::b/k.zip' }), 'main').branchTag).toBe('main');
  });

  test('buildah builds export step tags: the branch comes from the build, not the exports; a reused image used no cache', () => {
    const steps = buildRecord(build({ sourceVersion: 'refs/heads/feature/q' }, { CACHE_REFS_READ: stepTag('1'), CACHE_REF_WRITTEN: stepTag('2') }), 'main');
    expect([steps.branchTag, steps.refsRead, steps.refsWritten]).toEqual([branchTag('feature/q'), [stepTag('1')], [stepTag('2')]]);
    expect(buildRecord(build({}, { IMAGE_REUSED: 'true', CACHE_REFS_READ: '' }), 'main').reused).toBe(true);
    expect(buildRecord(build({ buildStatus: 'FAILED' }), 'main').succeeded).toBe(false);
  });
});

describe('readBuildUsage', () => {
  test('reads newest first, 100 builds a BatchGetBuilds call, and stops after the first page older than the window', async () => {
    // 100 builds a page: page 3 (k = 200..299) crosses 10 days.
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: history(400) });
    const usage = await readBuildUsage(fake.client(), PROJECT, NOW - 10 * DAY, 'main');
    expect(fake.callCount('ListBuildsForProject')).toBe(3);
    expect(fake.inputsOf('BatchGetBuilds').map(i => (i.ids as string[]).length)).toEqual([100, 100, 100]);
    expect(usage.historyAvailable).toBe(true);
    expect(usage.buildsRead).toBe(300);
    expect(usage.lastUseByTag.get('r0')).toBe(NOW);
    expect(usage.lastUseByTag.has('r299')).toBe(true);
    expect(usage.lastUseByTag.has('r300')).toBe(false);
  });

  test('never sends sortOrder: the default order is already newest first', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: history(250) });
    await readBuildUsage(fake.client(), PROJECT, NOW - 30 * DAY, 'main');
    const inputs = fake.inputsOf('ListBuildsForProject');
    expect(inputs).toHaveLength(3);
    for (const input of inputs) {
      expect(input.sortOrder).toBeUndefined();
      expect(input.projectName).toBe(PROJECT);
    }
    expect(inputs[0].nextToken).toBeUndefined();
    expect(inputs[1].nextToken).toEqual(expect.any(String));
  });

  test('reads a project with more than 100 builds, which a sortOrder would make CodeBuild refuse', async () => {
    // Before the fix every run sent sortOrder and CodeBuild answered InvalidInputException: history unreadable, fail safe, forever.
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: history(150) });
    const usage = await readBuildUsage(fake.client(), PROJECT, NOW - 30 * DAY, 'main');
    expect(usage.buildsRead).toBe(150);
    expect(usage.lastUseByTag.get('r149')).toBe(NOW - 149 * HOUR);
    expect(fake.callCount('ListBuildsForProject')).toBe(2);
  });

  test('reads past the window, at most MAX_PAGES_PAST_WINDOW pages, until it finds the newest successful default-branch build', async () => {
    // 1,500 builds an hour apart; the window (1 day) ends on the first page. Only build 1,050 is main's: page 11, the last one allowed.
    const builds = history(1500).map((b, i) => (1500 - 1 - i === 1050 ? b : { ...b, exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: 'feat' }] }));
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds });
    const usage = await readBuildUsage(fake.client(), PROJECT, NOW - DAY, 'main');
    expect(fake.callCount('ListBuildsForProject')).toBe(11);
    expect([...usage.defaultBranchRefs!]).toEqual(['main', 'r1050']);
    const farther = new FakeCodeBuild({ projectName: PROJECT, builds: builds.map(b => ({ ...b, exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: 'feat' }] })) });
    await readBuildUsage(farther.client(), PROJECT, NOW - DAY, 'main');
    expect(farther.callCount('ListBuildsForProject')).toBe(1 + MAX_PAGES_PAST_WINDOW);
  });

  test('counts running builds, and keeps the service\'s newest-first order whatever order BatchGetBuilds answers in', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: [
      ...history(3), { id: `${PROJECT}:running`, startTime: NOW - 60_000, sourceVersion: 'refs/heads/feature/r' },
    ] });
    const usage = await readBuildUsage(fake.client(), PROJECT, NOW - DAY, 'main');
    expect([usage.buildsRead, usage.buildsRunning]).toEqual([4, 1]);
    expect(usage.refsInUse!.has(branchTag('feature/r'))).toBe(true);
  });

  test('reads the whole history when it is all inside the window, and an empty history is not an error', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: history(3) });
    expect((await readBuildUsage(fake.client(), PROJECT, NOW - DAY, 'main')).buildsRead).toBe(3);
    const empty = new FakeCodeBuild({ projectName: PROJECT });
    const read = await readBuildUsage(empty.client(), PROJECT, NOW - DAY, 'main');
    expect([read.buildsRead, read.lastUseByTag.size]).toEqual([0, 0]);
    expect(empty.callCount('BatchGetBuilds')).toBe(0);
  });

  test('an unreadable history throws (the handler fails safe on it)', async () => {
    const denied = new FakeCodeBuild({ projectName: PROJECT, builds: history(1) })
      .failCall('ListBuildsForProject', codeBuildError('AccessDeniedException', 'not authorized'));
    await expect(readBuildUsage(denied.client(), PROJECT, NOW - DAY, 'main')).rejects.toThrow(/not authorized/);
    const throttled = new FakeCodeBuild({ projectName: PROJECT, builds: history(1) })
      .failCall('BatchGetBuilds', codeBuildError('ThrottlingException', 'Rate exceeded'));
    await expect(readBuildUsage(throttled.client(), PROJECT, NOW - DAY, 'main')).rejects.toThrow(/Rate exceeded/);
    const missing = new FakeCodeBuild({ projectName: 'other-project' });
    await expect(readBuildUsage(missing.client(), PROJECT, NOW - DAY, 'main')).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
