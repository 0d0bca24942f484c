/**
 * Two projects (the images web and api of a CachedImageBuildGroup) write to one cache repository, and api's builds also read
 * web's refs (cross-image cache). The cleanup reads both histories: a ref is judged on every project's use of it, and each
 * image's default branch and running builds are protected by its own tags.
 */
import { Build } from '@aws-sdk/client-codebuild';
import { buildRecord, readProjectsUsage } from '../../../lambda/cache-cleanup/codebuild';
import { readConfig } from '../../../lambda/cache-cleanup/config';
import { KeepReason, DeleteReason } from '../../../lambda/cache-cleanup/contract';
import { plan } from '../../../lambda/cache-cleanup/plan';
import { codeBuildError, FakeBuild, FakeCodeBuild, FakeCodeBuildAccount } from '../../fakes/codebuild';
import { DAY, HOUR, image, NOW, policy } from './fixtures';

const WEB = { projectName: 'web-build', defaultBranchTag: 'web--main', imageName: 'web' };
const API = { projectName: 'api-build', defaultBranchTag: 'api--main', imageName: 'api' };

/** A finished build of `start`, an hour long, with these exported variables. */
function done(start: number, vars: Record<string, string>): FakeBuild {
  return { startTime: start, endTime: start + HOUR, exportedEnvironmentVariables: Object.entries(vars).map(([name, value]) => ({ name, value })) };
}

/**
 * Web built main 20 days ago and feature-a 10 days ago; api builds every day and reads web's refs; one api build of feature-b
 * runs. Both projects live in one account (the strict fake: page sizes, id limits, no sortOrder past 100 builds).
 */
function account(): FakeCodeBuildAccount {
  const web = new FakeCodeBuild({ projectName: WEB.projectName, builds: [
    done(NOW - 20 * DAY, { CACHE_REFS_READ: 'web--main', CACHE_REF_WRITTEN: 'web--main' }),
    done(NOW - 10 * DAY, { CACHE_REFS_READ: 'web--feature-a,web--main', CACHE_REF_WRITTEN: 'web--feature-a' }),
  ] });
  const api = new FakeCodeBuild({ projectName: API.projectName, builds: [
    done(NOW - 2 * DAY, { CACHE_REFS_READ: 'api--main,web--main', CACHE_REF_WRITTEN: 'api--main' }),
    done(NOW - DAY, { CACHE_REFS_READ: 'api--feature-a,web--feature-a,api--main,web--main', CACHE_REF_WRITTEN: 'api--feature-a' }),
    { startTime: NOW - HOUR, sourceVersion: 'refs/heads/feature-b' },
  ] });
  return new FakeCodeBuildAccount([web, api]);
}

function listed(fake: FakeCodeBuildAccount): string[] {
  return fake.requests.filter(r => r.command === 'ListBuildsForProject').map(r => (r.input as { projectName: string }).projectName);
}

describe('a cache repository shared by two projects', () => {
  test('the history of each project is read; a ref one image wrote and only the other read stays; each default branch is kept', async () => {
    const fake = account();
    const usage = await readProjectsUsage(fake.client(), [WEB, API], NOW - 14 * DAY);
    expect(listed(fake)).toEqual(['web-build', 'api-build']);
    expect(usage.buildsRead).toBe(5);
    expect(usage.buildsRunning).toBe(1);

    const images = [
      image('web-main', { tags: ['web--main'], pushedAt: NOW - 20 * DAY }),
      image('web-feature-a', { tags: ['web--feature-a'], pushedAt: NOW - 10 * DAY }),
      image('web-old', { tags: ['web--old'], pushedAt: NOW - 40 * DAY }),
      image('api-main', { tags: ['api--main'], pushedAt: NOW - 40 * DAY }),
      image('api-feature-a', { tags: ['api--feature-a'], pushedAt: NOW - DAY }),
      image('api-feature-b', { tags: ['api--feature-b'], pushedAt: NOW - 30 * DAY }),
      image('web-feature-b', { tags: ['web--feature-b'], pushedAt: NOW - 30 * DAY }),
      image('web-feature-c', { tags: ['web--feature-c'], pushedAt: NOW - 30 * DAY }),
    ];
    const p = plan(images, usage, policy({ defaultBranchTag: WEB.defaultBranchTag, idleTimeoutSeconds: 7 * 24 * 3600 }), NOW);
    const keep = Object.fromEntries(p.keep.map(e => [e.image.tags[0], e.reason]));
    const del = Object.fromEntries(p.delete.map(e => [e.image.tags[0], e.reason]));
    expect(keep).toEqual({
      // web's newest main build is 20 days old, past the idle timeout: kept as web's default branch cache.
      'web--main': KeepReason.NEWEST_DEFAULT_BRANCH,
      // Written by web 10 days ago (idle for web's history alone), read by api a day ago: in use.
      'web--feature-a': KeepReason.RECENTLY_USED,
      // api's default branch, pushed 40 days ago: kept by api's own protection, not the policy's (web's) tag.
      'api--main': KeepReason.NEWEST_DEFAULT_BRANCH,
      'api--feature-a': KeepReason.RECENTLY_USED,
      // api builds feature-b now: its own ref of the branch is in use, named after api, not web.
      'api--feature-b': KeepReason.IN_USE_BY_RUNNING_BUILD,
      // ... and so is web's ref of feature-b, which that build reads next (cross-image cache), though idle for 30 days.
      'web--feature-b': KeepReason.IN_USE_BY_RUNNING_BUILD,
    });
    expect(del).toEqual({ 'web--old': DeleteReason.IDLE, 'web--feature-c': DeleteReason.IDLE });
  });

  test('one unreadable history fails the run safe: a ref only that project used would look idle', async () => {
    const fake = account().failCall('ListBuildsForProject', codeBuildError('AccessDeniedException', 'not authorized on api-build'), 2);
    await expect(readProjectsUsage(fake.client(), [WEB, API], NOW - 14 * DAY)).rejects.toThrow(/not authorized on api-build/);
    expect(listed(fake)).toEqual(['web-build', 'api-build']);
  });

  test('a project the account does not have is ResourceNotFoundException, and the run fails safe', async () => {
    const fake = account();
    await expect(readProjectsUsage(fake.client(), [WEB, { ...API, projectName: 'gone-build' }], NOW - 14 * DAY)).rejects.toThrow(/gone-build/);
  });

  test('a build whose exports do not name its ref counts on its image\'s ref of its branch', () => {
    const api = account().projects[1];
    const running: Build = api.describe(api.idsNewestFirst()[0])!;
    expect(running.buildStatus).toBe('IN_PROGRESS');
    expect(buildRecord(running, API.defaultBranchTag, API.imageName)).toMatchObject({ branchTag: 'api--feature-b', defaultBranchTag: 'api--main' });
    expect(buildRecord(running, 'main')).toMatchObject({ branchTag: 'feature-b' });
  });

  test('PROJECTS configures the function; a duplicate, a bad tag or a bad image name is refused', () => {
    const env = { CACHE_REPOSITORY_NAME: 'cache', PROJECT_NAME: 'web-build', POLICY: '{"defaultBranchTag":"web--main"}' };
    const config = readConfig({ ...env, PROJECTS: JSON.stringify([WEB, API]) });
    expect(config.projects).toEqual([WEB, API]);
    expect(config.projectName).toBe('web-build');
    expect(readConfig(env).projects).toEqual([{ projectName: 'web-build', defaultBranchTag: 'web--main' }]);
    expect(() => readConfig({ ...env, PROJECTS: JSON.stringify([WEB, WEB]) })).toThrow('PROJECTS lists project web-build twice');
    expect(() => readConfig({ ...env, PROJECTS: JSON.stringify([{ ...API, defaultBranchTag: '--x' }]) })).toThrow(/PROJECTS\[0\].defaultBranchTag must be an image tag/);
    expect(() => readConfig({ ...env, PROJECTS: JSON.stringify([{ ...API, imageName: 'a--b' }]) })).toThrow(/PROJECTS\[0\].imageName must be an image name/);
    expect(() => readConfig({ ...env, PROJECTS: '[]' })).toThrow('PROJECTS must be a non-empty JSON array');
  });
});
