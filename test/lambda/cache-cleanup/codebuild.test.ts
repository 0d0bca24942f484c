import { BatchGetBuildsCommand, Build, CodeBuildClient, ListBuildsForProjectCommand } from '@aws-sdk/client-codebuild';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { readBuildUsage, refsOfBuild, usageFromBuilds } from '../../../lambda/cache-cleanup/codebuild';
import { DAY, HOUR, NOW } from './fixtures';

const PROJECT = 'app-build';
const codebuild = mockClient(CodeBuildClient);

function build(id: string, start: number, vars: Record<string, string> = {}, end?: number): Build {
  return {
    id,
    startTime: new Date(start),
    endTime: end === undefined ? undefined : new Date(end),
    exportedEnvironmentVariables: Object.entries(vars).map(([name, value]) => ({ name, value })),
  };
}

beforeEach(() => {
  codebuild.reset();
});

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
    const ids = Array.from({ length: 400 }, (_, k) => `${PROJECT}:${k}`);
    const startOf = (k: number): number => NOW - k * HOUR; // 100 builds a page: page 3 (k = 200..299) crosses 10 days
    codebuild.on(ListBuildsForProjectCommand).callsFake(input => {
      const from = input.nextToken ? Number(input.nextToken) : 0;
      return { ids: ids.slice(from, from + 100), nextToken: from + 100 < ids.length ? String(from + 100) : undefined };
    });
    codebuild.on(BatchGetBuildsCommand).callsFake(input => ({
      builds: input.ids.map((id: string) => build(id, startOf(Number(id.split(':')[1])), { CACHE_REFS_READ: `r${id.split(':')[1]}` })),
    }));
    const usage = await readBuildUsage(new CodeBuildClient({}), PROJECT, NOW - 10 * DAY);
    expect(codebuild).toHaveReceivedCommandTimes(ListBuildsForProjectCommand, 3);
    expect(codebuild).toHaveReceivedCommandWith(ListBuildsForProjectCommand, { projectName: PROJECT, sortOrder: 'DESCENDING' });
    expect(codebuild.commandCalls(BatchGetBuildsCommand).map(c => c.args[0].input.ids!.length)).toEqual([100, 100, 100]);
    expect(usage.historyAvailable).toBe(true);
    expect(usage.buildsRead).toBe(300);
    expect(usage.lastUseByTag.get('r0')).toBe(NOW);
    expect(usage.lastUseByTag.has('r300')).toBe(false);
  });

  test('reads the whole history when it is all inside the window, and an empty history is not an error', async () => {
    codebuild.on(ListBuildsForProjectCommand)
      .resolvesOnce({ ids: ['a', 'b'], nextToken: 't' })
      .resolvesOnce({ ids: ['c'] });
    codebuild.on(BatchGetBuildsCommand).callsFake(input => ({ builds: input.ids.map((id: string) => build(id, NOW - HOUR)), buildsNotFound: [] }));
    expect((await readBuildUsage(new CodeBuildClient({}), PROJECT, NOW - DAY)).buildsRead).toBe(3);
    codebuild.reset();
    codebuild.on(ListBuildsForProjectCommand).resolves({ ids: [] });
    const empty = await readBuildUsage(new CodeBuildClient({}), PROJECT, NOW - DAY);
    expect([empty.buildsRead, empty.lastUseByTag.size]).toEqual([0, 0]);
    expect(codebuild).toHaveReceivedCommandTimes(BatchGetBuildsCommand, 0);
  });

  test('an unreadable history throws (the handler fails safe on it)', async () => {
    codebuild.on(ListBuildsForProjectCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    await expect(readBuildUsage(new CodeBuildClient({}), PROJECT, NOW - DAY)).rejects.toThrow(/not authorized/);
    codebuild.reset();
    codebuild.on(ListBuildsForProjectCommand).resolves({ ids: ['a'] });
    codebuild.on(BatchGetBuildsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(readBuildUsage(new CodeBuildClient({}), PROJECT, NOW - DAY)).rejects.toThrow(/Rate exceeded/);
  });
});
