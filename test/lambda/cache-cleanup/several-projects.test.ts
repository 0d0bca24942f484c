/**
 * Two projects (the images web and api of a CachedImageBuildGroup) write to one cache repository, and api's builds also read
 * web's refs (cross-image cache). The cleanup reads both histories: a ref is judged on every project's use of it, and each
 * image's default branch and running builds are protected by its own tags.
 */
import { BatchGetBuildsCommand, Build, CodeBuildClient, ListBuildsForProjectCommand } from '@aws-sdk/client-codebuild';
import { buildRecord, readProjectsUsage } from '../../../lambda/cache-cleanup/codebuild';
import { readConfig } from '../../../lambda/cache-cleanup/config';
import { KeepReason, DeleteReason } from '../../../lambda/cache-cleanup/contract';
import { plan } from '../../../lambda/cache-cleanup/plan';
import { DAY, HOUR, image, NOW, policy } from './fixtures';

const WEB = { projectName: 'web-build', defaultBranchTag: 'web--main', imageName: 'web' };
const API = { projectName: 'api-build', defaultBranchTag: 'api--main', imageName: 'api' };

function build(id: string, start: number, fields: Partial<Build>, vars: Record<string, string> = {}): Build {
  return {
    id, startTime: new Date(start), endTime: new Date(start + HOUR), buildStatus: 'SUCCEEDED', buildComplete: true,
    exportedEnvironmentVariables: Object.entries(vars).map(([name, value]) => ({ name, value })), ...fields,
  };
}

/** Web built main 20 days ago and feature-a 10 days ago; api builds every day and reads web's refs; one api build of feature-b runs. */
const histories: Record<string, Build[]> = {
  'web-build': [
    build('web-build:2', NOW - 10 * DAY, {}, { CACHE_REFS_READ: 'web--feature-a,web--main', CACHE_REF_WRITTEN: 'web--feature-a' }),
    build('web-build:1', NOW - 20 * DAY, {}, { CACHE_REFS_READ: 'web--main', CACHE_REF_WRITTEN: 'web--main' }),
  ],
  'api-build': [
    build('api-build:3', NOW - HOUR, { buildStatus: 'IN_PROGRESS', buildComplete: false, endTime: undefined, sourceVersion: 'refs/heads/feature-b' }),
    build('api-build:2', NOW - DAY, {}, { CACHE_REFS_READ: 'api--feature-a,web--feature-a,api--main,web--main', CACHE_REF_WRITTEN: 'api--feature-a' }),
    build('api-build:1', NOW - 2 * DAY, {}, { CACHE_REFS_READ: 'api--main,web--main', CACHE_REF_WRITTEN: 'api--main' }),
  ],
};

/** A CodeBuild client answered from `histories` (one page a project: the pagination is tested in codebuild.test.ts). */
function client(denied?: string): { client: CodeBuildClient; listed: string[] } {
  const listed: string[] = [];
  const send = async (command: unknown): Promise<unknown> => {
    if (command instanceof ListBuildsForProjectCommand) {
      const name = command.input.projectName!;
      listed.push(name);
      if (name === denied) throw new Error(`AccessDeniedException: not authorized to ListBuildsForProject on ${name}`);
      return { ids: histories[name].map(b => b.id!) };
    }
    if (command instanceof BatchGetBuildsCommand) {
      const ids = command.input.ids!;
      return { builds: Object.values(histories).flat().filter(b => ids.includes(b.id!)) };
    }
    throw new Error('unexpected command');
  };
  return { client: { send } as unknown as CodeBuildClient, listed };
}

describe('a cache repository shared by two projects', () => {
  test('the history of each project is read; a ref one image wrote and only the other read stays; each default branch is kept', async () => {
    const c = client();
    const usage = await readProjectsUsage(c.client, [WEB, API], NOW - 14 * DAY);
    expect(c.listed).toEqual(['web-build', 'api-build']);
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
    });
    expect(del).toEqual({ 'web--old': DeleteReason.IDLE, 'web--feature-b': DeleteReason.IDLE });
  });

  test('one unreadable history fails the run safe: a ref only that project used would look idle', async () => {
    await expect(readProjectsUsage(client('api-build').client, [WEB, API], NOW - 14 * DAY)).rejects.toThrow(/AccessDenied.*api-build/);
  });

  test('a build whose exports do not name its ref counts on its image\'s ref of its branch', () => {
    const running = histories['api-build'][0];
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
