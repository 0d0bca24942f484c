import { Build } from '@aws-sdk/client-codebuild';
import { readBuildUsage, refsOfBuild, usageFromBuilds } from '../../../lambda/cache-cleanup/codebuild';
import { codeBuildError, FakeBuild, FakeCodeBuild } from '../../fakes/codebuild';
import { DAY, HOUR, NOW } from './fixtures';

const PROJECT = 'app-build';

function build(id: string, start: number, vars: Record<string, string> = {}, end?: number): Build {
  return {
    id,
    startTime: new Date(start),
    endTime: end === undefined ? undefined : new Date(end),
    exportedEnvironmentVariables: Object.entries(vars).map(([name, value]) => ({ name, value })),
  };
}

/** `n` builds an hour apart, the newest (k = 0) starting at NOW, each reading ref `r<k>`; returned oldest first. */
function history(n: number): FakeBuild[] {
  return Array.from({ length: n }, (_, i) => {
    const k = n - 1 - i;
    return { id: `${PROJECT}:${k}`, startTime: NOW - k * HOUR, exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: `r${k}` }] };
  });
}

describe('usage from exported variables', () => {
  test('a build uses every ref it read and the ref it wrote, at its end time (start time while it runs)', () => {
    expect(refsOfBuild(build('b', NOW - HOUR, { CACHE_REFS_READ: 'feature-x-1a2b3c4d,main', CACHE_REF_WRITTEN: 'feature-x-1a2b3c4d' }, NOW)))
      .toEqual({ time: NOW, refs: ['feature-x-1a2b3c4d', 'main', 'feature-x-1a2b3c4d'] });
    expect(refsOfBuild(build('b', NOW - HOUR, { CACHE_REFS_READ: 'main', CACHE_REF_WRITTEN: '' })))
      .toEqual({ time: NOW - HOUR, refs: ['main'] });
    expect(refsOfBuild({ id: 'queued' }).time).toBeUndefined();
  });

  test('a fully cached build wrote nothing, but the refs it read are still used', () => {
    const usage = usageFromBuilds([
      build('new', NOW - HOUR, { CACHE_REFS_READ: 'f,main', CACHE_REF_WRITTEN: '' }, NOW - HOUR / 2),
      build('old', NOW - 3 * DAY, { CACHE_REFS_READ: 'f,main', CACHE_REF_WRITTEN: 'f' }, NOW - 3 * DAY),
      build('other', NOW - 2 * DAY, { UNRELATED: 'x', CACHE_REFS_READ: ' g , ' }, NOW - 2 * DAY),
    ]);
    expect(Object.fromEntries(usage)).toEqual({ f: NOW - HOUR / 2, main: NOW - HOUR / 2, g: NOW - 2 * DAY });
  });
});

describe('readBuildUsage', () => {
  test('reads newest first, 100 builds a BatchGetBuilds call, and stops after the first page older than the window', async () => {
    // 100 builds a page: page 3 (k = 200..299) crosses 10 days.
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: history(400) });
    const usage = await readBuildUsage(fake.client(), PROJECT, NOW - 10 * DAY);
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
    await readBuildUsage(fake.client(), PROJECT, NOW - 30 * DAY);
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
    const usage = await readBuildUsage(fake.client(), PROJECT, NOW - 30 * DAY);
    expect(usage.buildsRead).toBe(150);
    expect(usage.lastUseByTag.get('r149')).toBe(NOW - 149 * HOUR);
    expect(fake.callCount('ListBuildsForProject')).toBe(2);
  });

  test('reads the whole history when it is all inside the window, and an empty history is not an error', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: history(3) });
    expect((await readBuildUsage(fake.client(), PROJECT, NOW - DAY)).buildsRead).toBe(3);
    const empty = new FakeCodeBuild({ projectName: PROJECT });
    const read = await readBuildUsage(empty.client(), PROJECT, NOW - DAY);
    expect([read.buildsRead, read.lastUseByTag.size]).toEqual([0, 0]);
    expect(empty.callCount('BatchGetBuilds')).toBe(0);
  });

  test('an unreadable history throws (the handler fails safe on it)', async () => {
    const denied = new FakeCodeBuild({ projectName: PROJECT, builds: history(1) })
      .failCall('ListBuildsForProject', codeBuildError('AccessDeniedException', 'not authorized'));
    await expect(readBuildUsage(denied.client(), PROJECT, NOW - DAY)).rejects.toThrow(/not authorized/);
    const throttled = new FakeCodeBuild({ projectName: PROJECT, builds: history(1) })
      .failCall('BatchGetBuilds', codeBuildError('ThrottlingException', 'Rate exceeded'));
    await expect(readBuildUsage(throttled.client(), PROJECT, NOW - DAY)).rejects.toThrow(/Rate exceeded/);
    const missing = new FakeCodeBuild({ projectName: 'other-project' });
    await expect(readBuildUsage(missing.client(), PROJECT, NOW - DAY)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
