/**
 * Issue 10: the cleanup judged by ECR's and CodeBuild's documented behaviour, one scenario per defect, through the real
 * handler (runCleanup) and the strict fakes. Each scenario failed on the code before the fix.
 */
import { branchTag } from '../../../lib/build-script/cache-refs';
import { resolvePolicy } from '../../../lambda/cache-cleanup/config';
import { CleanupPolicy, KeepReason } from '../../../lambda/cache-cleanup/contract';
import { runCleanup } from '../../../lambda/cache-cleanup/index';
import { CleanupReport } from '../../../lambda/cache-cleanup/report';
import { FakeBuild, FakeCodeBuild } from '../../fakes/codebuild';
import { ecrError, FakeEcr, FakeImage, OCI_INDEX } from '../../fakes/ecr';
import { DAY, digestOf, HOUR, NOW, stepTag } from './fixtures';

const REPO = 'app-cache';
const PROJECT = 'app-build';
const MINUTE = 60_000;

interface Outcome {
  readonly report: CleanupReport;
  readonly ecr: FakeEcr;
  readonly left: (name: string) => boolean;
}

function manifest(name: string, fields: Partial<Omit<FakeImage, 'digest'>> = {}): FakeImage {
  return { digest: digestOf(name), sizeBytes: 100, pushedAt: NOW - 30 * DAY, ...fields };
}

/** A finished build of `branch` (CACHE_BRANCH, as a pipeline action sets it) that read and wrote the given refs. */
function finished(branch: string, end: number, read: string[], written: string[] = [], fields: Partial<FakeBuild> = {}): FakeBuild {
  return {
    startTime: end - 10 * MINUTE, endTime: end,
    environmentVariables: [{ name: 'CACHE_BRANCH', value: branch }],
    exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: read.join(',') }, { name: 'CACHE_REF_WRITTEN', value: written.join(',') }],
    ...fields,
  };
}

async function run(images: FakeImage[], builds: FakeBuild[], policy: Partial<CleanupPolicy> = {}): Promise<Outcome> {
  const ecr = new FakeEcr({ repositoryName: REPO, images });
  const codebuild = new FakeCodeBuild({ projectName: PROJECT, builds });
  const lines: string[] = [];
  const report = await runCleanup(
    { repositoryName: REPO, projectName: PROJECT, dryRun: false, metricsNamespace: 'Test', policy: resolvePolicy({ defaultBranchTag: 'main', maxDeleteFraction: 1, ...policy }) },
    { ecr: ecr.client(), codebuild: codebuild.client(), now: () => NOW, log: l => lines.push(l) },
  );
  return { report, ecr, left: name => ecr.has(digestOf(name)) };
}

describe('1. buildah: the newest default-branch build\'s step tags are the protected default cache', () => {
  test('a size budget evicts fresh feature steps before main\'s older ones', async () => {
    const [m1, m2, m3, f2, f3] = ['m1', 'm2', 'm3', 'f2', 'f3'].map(stepTag);
    const images = [m1, m2, m3, f2, f3].map((tag, k) => manifest(['m1', 'm2', 'm3', 'f2', 'f3'][k], { tags: [tag], pushedAt: NOW - 20 * DAY }));
    const builds = [
      finished('main', NOW - 10 * DAY, [m1, m2], [m3]),
      // The feature branch shares main's base step, then diverges.
      finished('feature/x', NOW - HOUR, [m1], [f2, f3]),
    ];
    const { report, left } = await run(images, builds, { maxCacheBytes: 300 });
    expect(['m1', 'm2', 'm3'].map(left)).toEqual([true, true, true]);
    expect(['f2', 'f3'].map(left)).toEqual([false, false]);
    expect(report.keptByReason[KeepReason.NEWEST_DEFAULT_BRANCH]).toBe(3);
  });

  test('a build that reused an existing image (IMAGE_REUSED, no refs) does not take the protection away', async () => {
    const [m1, m2] = ['m1', 'm2'].map(stepTag);
    const images = [manifest('m1', { tags: [m1] }), manifest('m2', { tags: [m2] }), manifest('x', { tags: [stepTag('x')] })];
    const builds = [
      finished('main', NOW - 20 * DAY, [m1], [m2]),
      finished('main', NOW - HOUR, [], [], {
        exportedEnvironmentVariables: [{ name: 'IMAGE_REUSED', value: 'true' }, { name: 'CACHE_REFS_READ', value: '' }, { name: 'CACHE_REF_WRITTEN', value: '' }],
      }),
    ];
    const { left } = await run(images, builds);
    // Idle for 20 days, but the newest main build that used cache used them (history read past the idle window to find it).
    expect([left('m1'), left('m2'), left('x')]).toEqual([true, true, false]);
  });
});

describe('2. buildah: evicting for the budget keeps what stays usable (deepest steps last)', () => {
  test('base 100 ⊂ mid 150 ⊂ top 200, used together an hour ago, budget 350: top goes', async () => {
    const [base, mid, top] = ['base', 'mid', 'top'].map(stepTag);
    // Digests chosen so that a tie broken by digest evicts the base first.
    const at = (c: string): string => `sha256:${c.repeat(64)}`;
    const images: FakeImage[] = [
      { digest: at('a'), tags: [base], sizeBytes: 100, pushedAt: NOW - 5 * DAY },
      { digest: at('b'), tags: [mid], sizeBytes: 150, pushedAt: NOW - 5 * DAY },
      { digest: at('c'), tags: [top], sizeBytes: 200, pushedAt: NOW - 5 * DAY },
    ];
    const { ecr } = await run(images, [finished('feature/y', NOW - HOUR, [base, mid, top])], { maxCacheBytes: 350 });
    expect([ecr.has(at('a')), ecr.has(at('b')), ecr.has(at('c'))]).toEqual([true, true, false]);
  });
});

describe('3. the size budget does not over-evict while an unreadable index pins the bytes', () => {
  test('a1, a2, a3 = 50, unreadable index u = 10, budget 120: u and a1 go, a2 and a3 stay', async () => {
    const images = [
      manifest('a1', { tags: ['a1'], sizeBytes: 50 }), manifest('a2', { tags: ['a2'], sizeBytes: 50 }), manifest('a3', { tags: ['a3'], sizeBytes: 50 }),
      manifest('u', { tags: ['u'], sizeBytes: 10, mediaType: OCI_INDEX, children: [] }),
    ];
    const builds = [['a1', 4], ['a2', 3], ['u', 2], ['a3', 1]].map(([ref, days]) => finished(ref as string, NOW - (days as number) * DAY, [ref as string]));
    const ecr = new FakeEcr({ repositoryName: REPO, images }).failImage('BatchGetImage', digestOf('u'), 'KmsError', 'kms unavailable');
    const codebuild = new FakeCodeBuild({ projectName: PROJECT, builds });
    await runCleanup(
      { repositoryName: REPO, projectName: PROJECT, dryRun: false, metricsNamespace: 'Test', policy: resolvePolicy({ defaultBranchTag: 'main', maxDeleteFraction: 1, maxCacheBytes: 120 }) },
      { ecr: ecr.client(), codebuild: codebuild.client(), now: () => NOW, log: () => undefined },
    );
    expect(['a1', 'a2', 'a3', 'u'].map(n => ecr.has(digestOf(n)))).toEqual([false, true, true, false]);
  });
});

describe('4. the untagged grace runs from when the manifest lost its tag', () => {
  const feat = branchTag('feat');
  test('a manifest pushed weeks ago whose ref moved a minute ago (runAfterEachBuild) lives its grace', async () => {
    const images = [
      manifest('old-feat', { pushedAt: NOW - 30 * DAY }), // untagged now: the build below moved `feat` off it
      manifest('new-feat', { tags: [feat], pushedAt: NOW - MINUTE }),
    ];
    const builds = [
      // No-op builds read feat for weeks (the conditional push wrote nothing), then a dependency change wrote it.
      finished('feat', NOW - 5 * DAY, [feat, 'main']),
      finished('feat', NOW - 2 * DAY, [feat, 'main']),
      finished('feat', NOW - MINUTE / 2, [feat, 'main'], [feat]),
    ];
    const { report, left } = await run(images, builds);
    expect(left('old-feat')).toBe(true);
    expect(report.keptByReason[KeepReason.UNTAGGED_IN_GRACE]).toBe(1);
  });

  test('a manifest written three days ago and replaced a minute ago lives its grace; one replaced three days ago does not', async () => {
    const other = branchTag('other');
    const images = [
      manifest('feat-1', { pushedAt: NOW - 3 * DAY - 5 * MINUTE }),
      manifest('feat-2', { tags: [feat], pushedAt: NOW - 2 * MINUTE }),
      manifest('other-1', { pushedAt: NOW - 5 * DAY - 5 * MINUTE }),
      manifest('other-2', { tags: [other], pushedAt: NOW - 3 * DAY - 2 * MINUTE }),
    ];
    const builds = [
      finished('other', NOW - 5 * DAY, [other, 'main'], [other]),
      finished('feat', NOW - 3 * DAY, [feat, 'main'], [feat]),
      finished('other', NOW - 3 * DAY, [other, 'main'], [other]),
      finished('feat', NOW - MINUTE, [feat, 'main'], [feat]),
    ];
    const { left } = await run(images, builds);
    expect([left('feat-1'), left('other-1')]).toEqual([true, false]);
  });
});

describe('5. a running build\'s refs are in use (it has no exported variables yet)', () => {
  test('the branch tag of a build in progress survives though idle for weeks', async () => {
    const z = branchTag('feature/z');
    const images = [manifest('main', { tags: ['main'] }), manifest('z', { tags: [z], pushedAt: NOW - 20 * DAY })];
    const running: FakeBuild = { startTime: NOW - 5 * MINUTE, environmentVariables: [{ name: 'CACHE_BRANCH', value: 'feature/z' }] };
    const { report, left } = await run(images, [running]);
    expect(left('z')).toBe(true);
    expect(report.keptByReason['in-use-by-running-build']).toBe(1);
  });

  test('buildah: the steps the branch\'s newest build used are in use while the branch builds again, whatever the budget', async () => {
    const [q1, q2, r1] = ['q1', 'q2', 'r1'].map(stepTag);
    const images = [manifest('q1', { tags: [q1] }), manifest('q2', { tags: [q2] }), manifest('r1', { tags: [r1] })];
    const builds: FakeBuild[] = [
      finished('feature/q', NOW - 10 * DAY, [q1], [q2]),
      finished('feature/r', NOW - HOUR, [], [r1]),
      { startTime: NOW - 2 * MINUTE, sourceVersion: 'refs/heads/feature/q' },
    ];
    const { left } = await run(images, builds, { maxCacheBytes: 100 });
    expect([left('q1'), left('q2'), left('r1')]).toEqual([true, true, false]);
  });
});

describe('6. archived images: not cache, deleted after ECR\'s 90-day minimum storage; a restore counts as a use', () => {
  test('listed with imageStatus ANY; archived for 100 days goes, for 10 days stays, restored and restoring stay', async () => {
    const images = [
      manifest('archived-long', { tags: ['a-long'], status: 'ARCHIVED', pushedAt: NOW - 200 * DAY, lastArchivedAt: NOW - 100 * DAY }),
      manifest('archived-recent', { tags: ['a-recent'], status: 'ARCHIVED', pushedAt: NOW - 120 * DAY, lastArchivedAt: NOW - 10 * DAY }),
      manifest('archived-index', { status: 'ARCHIVED', mediaType: OCI_INDEX, children: [], lastArchivedAt: NOW - 95 * DAY }),
      manifest('restored', { tags: ['restored'], pushedAt: NOW - 60 * DAY, lastActivatedAt: NOW - HOUR }),
      manifest('restoring', { tags: ['restoring'], status: 'ACTIVATING', pushedAt: NOW - 60 * DAY, lastArchivedAt: NOW - 30 * DAY }),
    ];
    // A build read the archived tag an hour ago: the read missed (an archived image cannot be pulled), it is no use.
    const { report, ecr, left } = await run(images, [finished('x', NOW - HOUR, ['a-long'])]);
    expect(ecr.inputsOf('DescribeImages').every(i => (i.filter as { imageStatus?: string } | undefined)?.imageStatus === 'ANY')).toBe(true);
    expect([left('archived-long'), left('archived-index')]).toEqual([false, false]);
    expect([left('archived-recent'), left('restored'), left('restoring')]).toEqual([true, true, true]);
    expect(report.deletedByReason['archived']).toBe(2);
    // Archived and restoring manifests cannot be pulled: the scan never asks BatchGetImage for them.
    expect(ecr.callCount('BatchGetImage')).toBe(0);
    expect(report.indexReadFailures).toBe(0);
  });

  test('archived bytes do not count against maxCacheBytes: they are not cache', async () => {
    const images = [
      manifest('live', { tags: ['live'], sizeBytes: 100, pushedAt: NOW - HOUR }),
      manifest('archived', { tags: ['old'], sizeBytes: 10_000, status: 'ARCHIVED', lastArchivedAt: NOW - 10 * DAY }),
    ];
    const { left } = await run(images, [], { maxCacheBytes: 150 });
    expect([left('live'), left('archived')]).toEqual([true, true]);
  });
});

describe('7. a whole failed BatchGetImage call is reported, not thrown', () => {
  test('the run goes on; the indexes of the failed call count as unreadable', async () => {
    const images = [manifest('idle', { tags: ['idle'] }), manifest('idx', { tags: ['idx'], mediaType: OCI_INDEX, children: [], pushedAt: NOW - HOUR })];
    const ecr = new FakeEcr({ repositoryName: REPO, images });
    ecr.failCall('BatchGetImage', ecrError('ThrottlingException', 'Rate exceeded'));
    const report = await runCleanup(
      { repositoryName: REPO, projectName: PROJECT, dryRun: false, metricsNamespace: 'Test', policy: resolvePolicy({ defaultBranchTag: 'main', maxDeleteFraction: 1 }) },
      { ecr: ecr.client(), codebuild: new FakeCodeBuild({ projectName: PROJECT }).client(), now: () => NOW, log: () => undefined },
    );
    // idx is kept (pushed an hour ago) and unreadable: it could reference anything, so nothing is deleted this run.
    expect(report).toMatchObject({ indexReadFailures: 1, deleted: 0, keptByReason: { [KeepReason.INDEX_CHILDREN_UNKNOWN]: 1 } });
  });
});
