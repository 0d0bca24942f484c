/**
 * CodeBuild adapter: turns the project's recent build history into cache ref usage. A build that was fully
 * cached pushes nothing, so push times alone would let the cache every build reads look idle; the exported
 * CACHE_REFS_READ / CACHE_REF_WRITTEN say which refs each build actually used.
 */
import { BatchGetBuildsCommand, Build, CodeBuildClient, CodeBuildClientConfig, ListBuildsForProjectCommand } from '@aws-sdk/client-codebuild';
import { MAX_ATTEMPTS } from './ecr';
import { BuildUsage } from './plan';

/** BatchGetBuilds takes at most 100 ids a call. */
export const BUILDS_BATCH_SIZE = 100;
export const REFS_READ_VARIABLE = 'CACHE_REFS_READ';
export const REF_WRITTEN_VARIABLE = 'CACHE_REF_WRITTEN';

export function createCodeBuildClient(config: CodeBuildClientConfig = {}): CodeBuildClient {
  return new CodeBuildClient({ retryMode: 'adaptive', maxAttempts: MAX_ATTEMPTS, ...config });
}

/** When a build used its refs (end, or start while it runs; undefined if it has not started) and which refs those were. */
export function refsOfBuild(build: Build): { time: number | undefined; refs: string[] } {
  const time = (build.endTime ?? build.startTime)?.getTime();
  const refs: string[] = [];
  for (const v of build.exportedEnvironmentVariables ?? []) {
    if (v.name === REFS_READ_VARIABLE || v.name === REF_WRITTEN_VARIABLE) {
      for (const ref of (v.value ?? '').split(',')) if (ref.trim() !== '') refs.push(ref.trim());
    }
  }
  return { time, refs };
}

/** Tag → the latest time a build read or wrote it. */
export function usageFromBuilds(builds: Iterable<Build>): Map<string, number> {
  const lastUse = new Map<string, number>();
  for (const build of builds) {
    const { time, refs } = refsOfBuild(build);
    if (time === undefined) continue;
    for (const ref of refs) if (time > (lastUse.get(ref) ?? -Infinity)) lastUse.set(ref, time);
  }
  return lastUse;
}

export interface HistoryRead extends BuildUsage {
  readonly buildsRead: number;
}

/**
 * Reads the builds that may have used a ref since `since` (epoch ms): ListBuildsForProject newest first, each page
 * resolved with BatchGetBuilds, stopping after the first page that reaches a build started before `since`.
 * Throws when the history cannot be read; the handler then fails safe.
 *
 * No `sortOrder`: ids already come newest first by default, and CodeBuild refuses a sort order on a project with more
 * than 100 builds or together with a nextToken (InvalidInputException), which would fail every run safe forever.
 * https://docs.aws.amazon.com/codebuild/latest/APIReference/API_ListBuildsForProject.html
 */
export async function readBuildUsage(client: CodeBuildClient, projectName: string, since: number): Promise<HistoryRead> {
  const lastUseByTag = new Map<string, number>();
  let buildsRead = 0;
  let nextToken: string | undefined;
  let reachedOlder = false;
  do {
    const page = await client.send(new ListBuildsForProjectCommand({ projectName, nextToken }));
    const ids = page.ids ?? [];
    for (let i = 0; i < ids.length; i += BUILDS_BATCH_SIZE) {
      const out = await client.send(new BatchGetBuildsCommand({ ids: ids.slice(i, i + BUILDS_BATCH_SIZE) }));
      const builds = out.builds ?? [];
      buildsRead += builds.length;
      for (const [ref, time] of usageFromBuilds(builds)) if (time > (lastUseByTag.get(ref) ?? -Infinity)) lastUseByTag.set(ref, time);
      if (builds.some(b => b.startTime !== undefined && b.startTime.getTime() < since)) reachedOlder = true;
    }
    nextToken = page.nextToken;
  } while (nextToken && !reachedOlder);
  return { historyAvailable: true, lastUseByTag, buildsRead };
}
