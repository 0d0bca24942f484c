/**
 * CodeBuild adapter: reads the project's recent build history into one {@link BuildRecord} a build. A build that was fully
 * cached pushes nothing, so push times alone would let the cache every build reads look idle; the exported CACHE_REFS_READ /
 * CACHE_REF_WRITTEN say which refs each build actually used. What the records mean for the cleanup is decided in usage.ts.
 */
import { BatchGetBuildsCommand, Build, CodeBuildClient, CodeBuildClientConfig, ListBuildsForProjectCommand } from '@aws-sdk/client-codebuild';
import { imageCacheRef } from '../../lib/build-script/cache-refs';
import { CleanupProject } from './contract';
import { MAX_ATTEMPTS } from './ecr';
import { BuildRecord, BuildUsage, isBuildahStepTag, usageFromRecords } from './usage';

/** BatchGetBuilds takes at most 100 ids a call. */
export const BUILDS_BATCH_SIZE = 100;
export const REFS_READ_VARIABLE = 'CACHE_REFS_READ';
export const REF_WRITTEN_VARIABLE = 'CACHE_REF_WRITTEN';
export const IMAGE_REUSED_VARIABLE = 'IMAGE_REUSED';
/** The variable a pipeline action (or the project) sets to name the branch; the build script reads it first. */
export const BRANCH_VARIABLE = 'CACHE_BRANCH';
/**
 * How many history pages (of 100 builds) past the idle window are read to find the newest successful default-branch build
 * when the window holds none: buildah's default-branch cache is the step tags that build used, known only from its exports.
 */
export const MAX_PAGES_PAST_WINDOW = 10;

export function createCodeBuildClient(config: CodeBuildClientConfig = {}): CodeBuildClient {
  return new CodeBuildClient({ retryMode: 'adaptive', maxAttempts: MAX_ATTEMPTS, ...config });
}

/**
 * The build's branch by the build script's rule (`cib_branch` in lib/build-script/steps.sh.ts), as far as BatchGetBuilds shows
 * it: CACHE_BRANCH from the build's environment (a plain-text value: for Parameter Store and Secrets Manager variables the
 * value is where it is kept), then a branch in `sourceVersion` (`refs/heads/<branch>` or a bare branch name; not a pipeline's
 * artifact ARN, `pr/<n>`, another `refs/` ref or a commit). Undefined when neither says, and for what the Build shape does not
 * carry: CODEBUILD_WEBHOOK_HEAD_REF and the checkout's `git symbolic-ref`. The script then uses the default branch, and so
 * does the cleanup, unless the build's exports name its branch (registry and inline builds read their own branch's ref first).
 */
export function branchOfBuild(build: Build): string | undefined {
  const variables = build.environment?.environmentVariables ?? [];
  // The last one wins: StartBuild's overrides (a pipeline action's variables) come after the project's.
  const variable = [...variables].reverse().find(v => v.name === BRANCH_VARIABLE);
  if (variable?.value && (variable.type === undefined || variable.type === 'PLAINTEXT')) return variable.value;
  const version = build.sourceVersion ?? '';
  if (version.startsWith('refs/heads/')) return version.slice('refs/heads/'.length) || undefined;
  if (version === '' || version.startsWith('arn:') || version.startsWith('pr/') || version.startsWith('refs/') || /^[0-9a-f]{40}$/.test(version)) {
    return undefined;
  }
  return version;
}

function refList(value: string | undefined): string[] {
  const refs: string[] = [];
  for (const ref of (value ?? '').split(',')) if (ref.trim() !== '') refs.push(ref.trim());
  return refs;
}

/**
 * What one build says about cache refs. A build is running until CodeBuild reports it complete; until then it has no exported
 * variables (they are final only after post_build, CB4) and no end time.
 */
export function buildRecord(build: Build, defaultBranchTag: string, imageName?: string): BuildRecord {
  const exported = new Map<string, string | undefined>();
  for (const v of build.exportedEnvironmentVariables ?? []) if (v.name) exported.set(v.name, v.value);
  const refsRead = refList(exported.get(REFS_READ_VARIABLE));
  const refsWritten = refList(exported.get(REF_WRITTEN_VARIABLE));
  const running = build.buildStatus === 'IN_PROGRESS' || build.buildComplete === false;
  const start = build.startTime?.getTime();
  const branch = branchOfBuild(build);
  // A registry or inline build reads its own branch's ref first: the exports are the surest word on its branch.
  const ownRef = refsRead.length > 0 && !isBuildahStepTag(refsRead[0]) ? refsRead[0] : undefined;
  return {
    start,
    end: running ? undefined : build.endTime?.getTime() ?? start,
    succeeded: build.buildStatus === 'SUCCEEDED',
    branchTag: ownRef ?? (branch === undefined ? defaultBranchTag : imageCacheRef(imageName, branch)),
    defaultBranchTag,
    branch,
    refsRead,
    refsWritten,
    reused: exported.get(IMAGE_REUSED_VARIABLE) === 'true',
  };
}

export interface HistoryRead extends BuildUsage {
  readonly buildsRead: number;
  /** Builds in progress or queued when the history was read. */
  readonly buildsRunning: number;
}

/**
 * Reads the builds that may have used a ref since `since` (epoch ms): ListBuildsForProject newest first, each page resolved
 * with BatchGetBuilds, stopping after the first page that reaches a build started before `since` — or, when no successful
 * default-branch build that used cache was found by then, up to {@link MAX_PAGES_PAST_WINDOW} pages later, at the first page
 * that holds one. Throws when the history cannot be read; the handler then fails safe.
 *
 * No `sortOrder`: ids already come newest first by default, and CodeBuild refuses a sort order on a project with more
 * than 100 builds or together with a nextToken (InvalidInputException), which would fail every run safe forever.
 * https://docs.aws.amazon.com/codebuild/latest/APIReference/API_ListBuildsForProject.html
 */
export async function readBuildUsage(client: CodeBuildClient, projectName: string, since: number, defaultBranchTag: string): Promise<HistoryRead> {
  return readProjectsUsage(client, [{ projectName, defaultBranchTag }], since);
}

/**
 * The history of every project that uses one cache repository (the images of a group): each project read as
 * {@link readBuildRecords} does, the records merged newest first, so that a ref one image's builds read (its siblings') counts
 * as used, and each project's default branch and running builds are protected by its own tags. Throws when any history cannot
 * be read: a ref only that project used would look idle.
 */
export async function readProjectsUsage(client: CodeBuildClient, projects: readonly CleanupProject[], since: number): Promise<HistoryRead> {
  const perProject: BuildRecord[][] = [];
  for (const project of projects) perProject.push(await readBuildRecords(client, project, since));
  if (projects.length > 1) {
    // A running build of one image reads the other images' refs of its branch too (cross-image cache): protect them with its own.
    perProject.forEach((records, i) => {
      perProject[i] = records.map(r => {
        if (r.end !== undefined || r.branch === undefined) return r;
        const branch = r.branch;
        return { ...r, siblingBranchTags: projects.filter((_, j) => j !== i).map(q => imageCacheRef(q.imageName, branch)) };
      });
    });
  }
  const records = perProject.length === 1 ? perProject[0] : mergeNewestFirst(perProject);
  // Every build started since `since` was read (ids come by build number, which CodeBuild gives in start order). Older ones may
  // have been read too, but a manifest pushed before `since` is judged as pushed before the history: CodeBuild does not keep
  // builds forever, and the cache may be older than the project.
  const usage = usageFromRecords(records, projects[0].defaultBranchTag, since);
  if (projects.length > 1) {
    // Each image's default branch tag is never deleted, as the policy's is for a repository of one project.
    const defaults = new Set(usage.defaultBranchRefs ?? []);
    for (const p of projects) defaults.add(p.defaultBranchTag);
    return { ...usage, defaultBranchRefs: defaults, buildsRead: records.length, buildsRunning: records.filter(r => r.end === undefined).length };
  }
  return { ...usage, buildsRead: records.length, buildsRunning: records.filter(r => r.end === undefined).length };
}

/** Records of several projects, each newest first, as one list newest first (by start; a build without one counts as newest). */
function mergeNewestFirst(lists: readonly BuildRecord[][]): BuildRecord[] {
  const key = (r: BuildRecord): number => r.start ?? r.end ?? Infinity;
  return lists.flat().map((r, i) => ({ r, i })).sort((a, b) => key(b.r) - key(a.r) || a.i - b.i).map(x => x.r);
}

/**
 * Reads the builds of one project that may have used a ref since `since` (epoch ms): ListBuildsForProject newest first, each
 * page resolved with BatchGetBuilds, stopping after the first page that reaches a build started before `since` — or, when no
 * successful default-branch build that used cache was found by then, up to {@link MAX_PAGES_PAST_WINDOW} pages later, at the
 * first page that holds one. Throws when the history cannot be read; the handler then fails safe.
 *
 * No `sortOrder`: ids already come newest first by default, and CodeBuild refuses a sort order on a project with more
 * than 100 builds or together with a nextToken (InvalidInputException), which would fail every run safe forever.
 * https://docs.aws.amazon.com/codebuild/latest/APIReference/API_ListBuildsForProject.html
 */
export async function readBuildRecords(client: CodeBuildClient, project: CleanupProject, since: number): Promise<BuildRecord[]> {
  const { projectName, defaultBranchTag, imageName } = project;
  const records: BuildRecord[] = [];
  let nextToken: string | undefined;
  let reachedOlder = false;
  let foundDefault = false;
  let pagesPast = 0;
  do {
    const page = await client.send(new ListBuildsForProjectCommand({ projectName, nextToken }));
    const ids = page.ids ?? [];
    for (let i = 0; i < ids.length; i += BUILDS_BATCH_SIZE) {
      const batch = ids.slice(i, i + BUILDS_BATCH_SIZE);
      const out = await client.send(new BatchGetBuildsCommand({ ids: batch }));
      // The reference does not promise the order of `builds`: keep ListBuildsForProject's, newest first.
      const byId = new Map((out.builds ?? []).map(b => [b.id, b]));
      for (const id of batch) {
        const build = byId.get(id);
        if (!build) continue;
        const record = buildRecord(build, defaultBranchTag, imageName);
        records.push(record);
        if (record.start !== undefined && record.start < since) reachedOlder = true;
        if (record.end !== undefined && record.succeeded && !record.reused && record.branchTag === defaultBranchTag
          && record.refsRead.length + record.refsWritten.length > 0) foundDefault = true;
      }
    }
    if (reachedOlder) pagesPast++;
    nextToken = page.nextToken;
  } while (nextToken && (!reachedOlder || (!foundDefault && pagesPast <= MAX_PAGES_PAST_WINDOW)));
  return records;
}
