import * as codebuildAdapter from '../../../lambda/cache-cleanup/codebuild';
import { CleanupConfig, resolvePolicy } from '../../../lambda/cache-cleanup/config';
import { CleanupPolicy, DeleteReason, KeepReason } from '../../../lambda/cache-cleanup/contract';
import * as ecrAdapter from '../../../lambda/cache-cleanup/ecr';
import { handler, runCleanup } from '../../../lambda/cache-cleanup/index';
import { CleanupReport } from '../../../lambda/cache-cleanup/report';
import { codeBuildError, FakeCodeBuild } from '../../fakes/codebuild';
import { ecrError, FakeEcr, FakeImage, OCI_INDEX } from '../../fakes/ecr';
import { DAY, digestOf, HOUR, NOW } from './fixtures';

function manifest(name: string, tags: string[], ageDays: number, fields: Partial<Omit<FakeImage, 'digest'>> = {}): FakeImage {
  return { digest: digestOf(name), tags, sizeBytes: 1000, pushedAt: NOW - ageDays * DAY, ...fields };
}

/**
 * main and feat: read by a recent no-op build, pushed long ago. old-a, old-b: idle. Two overwritten manifests.
 * multi: a fresh index with an old child. old-multi: an idle index with its child.
 */
const REPOSITORY: FakeImage[] = [
  manifest('main', ['main'], 40),
  manifest('feat', ['feat'], 40),
  manifest('old-a', ['old-a'], 30),
  manifest('old-b', ['old-b'], 30),
  manifest('overwritten-1', [], 3),
  manifest('overwritten-2', [], 3),
  manifest('idx', ['multi'], 1, { mediaType: OCI_INDEX, children: [digestOf('idx-child')] }),
  manifest('idx-child', [], 10),
  manifest('old-idx', ['old-multi'], 20, { mediaType: OCI_INDEX, children: [digestOf('old-idx-child')] }),
  manifest('old-idx-child', [], 20),
];

let ecr: FakeEcr;
let codebuild: FakeCodeBuild;

function deletedInOrder(): string[][] {
  return ecr.inputsOf('BatchDeleteImage').map(input => (input.imageIds as { imageDigest: string }[]).map(i => i.imageDigest));
}

function config(policy: Partial<CleanupPolicy> = {}, dryRun = false): CleanupConfig {
  return {
    repositoryName: 'app-cache', projectName: 'app-build', dryRun, metricsNamespace: 'Test/Cache',
    policy: resolvePolicy({ defaultBranchTag: 'main', maxDeleteFraction: 1, ...policy }),
  };
}

function run(cfg: CleanupConfig): { lines: string[]; result: Promise<CleanupReport> } {
  const lines: string[] = [];
  const result = runCleanup(cfg, { ecr: ecr.client(), codebuild: codebuild.client(), now: () => NOW, log: l => lines.push(l) });
  return { lines, result };
}

function parsed(lines: string[]): { report: CleanupReport; emf: Record<string, unknown>[] } {
  const docs = lines.map(l => JSON.parse(l) as Record<string, unknown>);
  return { report: docs[0] as unknown as CleanupReport, emf: docs.slice(1) };
}

beforeEach(() => {
  ecr = new FakeEcr({ repositoryName: 'app-cache', images: REPOSITORY });
  codebuild = new FakeCodeBuild({
    projectName: 'app-build',
    builds: [{
      id: 'app-build:1', startTime: NOW - 2 * HOUR, endTime: NOW - HOUR,
      exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: 'feat,main' }, { name: 'CACHE_REF_WRITTEN', value: '' }],
    }],
  });
});

describe('runCleanup', () => {
  test('deletes what the plan says, index children after their index, and logs one report plus EMF lines', async () => {
    const { lines, result } = run(config());
    const returned = await result;
    const calls = deletedInOrder();
    expect(calls.flat().sort()).toEqual(['old-a', 'old-b', 'overwritten-1', 'overwritten-2', 'old-idx', 'old-idx-child'].map(digestOf).sort());
    expect(calls).toHaveLength(2);
    expect(calls[0]).toContain(digestOf('old-idx'));
    expect(calls[1]).toEqual([digestOf('old-idx-child')]);
    // ECR accepted every call: what is left is what the plan kept.
    expect(ecr.images().map(i => i.digest).sort()).toEqual(['main', 'feat', 'idx', 'idx-child'].map(digestOf).sort());

    const { report, emf } = parsed(lines);
    expect(report).toEqual(returned);
    expect(report).toMatchObject({
      message: 'cache-cleanup report', repository: 'app-cache', project: 'app-build', dryRun: false, failSafe: false,
      scanned: 10, kept: 4, planned: 6, deleted: 6, failures: 0, buildsRead: 1, bytesScanned: 8000, bytesReclaimed: 5000, repositoryBytes: 3000,
      keptByReason: {
        [KeepReason.NEWEST_DEFAULT_BRANCH]: 1, [KeepReason.RECENTLY_USED]: 2, [KeepReason.CHILD_OF_KEPT_INDEX]: 1,
      },
      deletedByReason: { [DeleteReason.IDLE]: 3, [DeleteReason.UNTAGGED_PAST_GRACE]: 3 },
    });
    expect(report.refused).toBeUndefined();

    expect(emf).toHaveLength(1 + Object.values(DeleteReason).length);
    expect(emf[0]).toMatchObject({
      _aws: { Timestamp: NOW, CloudWatchMetrics: [{ Namespace: 'Test/Cache', Dimensions: [['Repository']] }] },
      Repository: 'app-cache', ImagesDeleted: 6, BytesReclaimed: 5000, CacheRepositoryBytes: 3000, CacheRepositoryImages: 4, DeleteFailures: 0,
      FailSafe: 0, DeletionRefused: 0, IndexReadFailures: 0,
    });
    const declared = (emf[0]._aws as { CloudWatchMetrics: { Metrics: { Name: string }[] }[] }).CloudWatchMetrics[0].Metrics.map(m => m.Name);
    for (const name of declared) expect(typeof emf[0][name]).toBe('number');
    const byReason = Object.fromEntries(emf.slice(1).map(d => [d.Reason, d.ImagesDeleted]));
    expect(byReason).toEqual({ idle: 3, 'over-budget': 0, 'untagged-past-grace': 3, archived: 0 });
    expect((emf[1]._aws as { CloudWatchMetrics: { Dimensions: string[][] }[] }).CloudWatchMetrics[0].Dimensions).toEqual([['Repository', 'Reason']]);
  });

  test('dry run: reports what it would delete and deletes nothing', async () => {
    const { lines, result } = run(config({}, true));
    await result;
    expect(ecr.callCount('BatchDeleteImage')).toBe(0);
    const { report, emf } = parsed(lines);
    expect(report).toMatchObject({ dryRun: true, planned: 6, deleted: 0, bytesReclaimed: 0, plannedByReason: { idle: 3, 'untagged-past-grace': 3 } });
    expect(emf[0]).toMatchObject({ ImagesDeleted: 0, ImagesPlannedForDeletion: 6, CacheRepositoryBytes: 8000 });
  });

  test('blast radius: refuses to delete more than the fraction of the tagged images, deletes nothing, and says why', async () => {
    const { lines, result } = run(config({ maxDeleteFraction: 0.25 }));
    await result;
    expect(ecr.callCount('BatchDeleteImage')).toBe(0);
    const { report, emf } = parsed(lines);
    expect(report.refused).toMatch(/would delete 3 of 6 tagged images \(50\.0%\), more than maxDeleteFraction 0\.25/);
    expect(report).toMatchObject({ planned: 0, deleted: 0, keptByReason: { [KeepReason.REFUSED_LARGE_DELETE]: 6 } });
    expect(emf[0]).toMatchObject({ DeletionRefused: 1, ImagesDeleted: 0 });
  });

  test('blast radius: maxDeletesPerRun defers the newest candidates to the next run', async () => {
    const { lines, result } = run(config({ maxDeletesPerRun: 2 }));
    await result;
    expect(deletedInOrder().flat().sort()).toEqual([digestOf('old-a'), digestOf('old-b')].sort());
    expect(parsed(lines).report.keptByReason[KeepReason.DEFERRED_RUN_CAP]).toBe(4);
  });

  test('fails safe when the build history cannot be read: keeps every tagged image, reports why', async () => {
    codebuild.failCall('ListBuildsForProject', codeBuildError('AccessDeniedException', 'User is not authorized'));
    // Without the history, the overwritten manifests may have lost their tag at the latest push of a tagged image (multi, a
    // day ago): with a day of grace they wait; with 12 hours they go.
    await run(config()).result;
    expect(ecr.callCount('BatchDeleteImage')).toBe(0);
    const { lines, result } = run(config({ untaggedGracePeriodSeconds: 12 * 3600 }));
    await result;
    // old-idx-child is untagged and past grace, but its index is tagged, hence kept.
    expect(deletedInOrder().flat().sort()).toEqual([digestOf('overwritten-1'), digestOf('overwritten-2')].sort());
    const { report, emf } = parsed(lines);
    expect(report).toMatchObject({ failSafe: true, buildsRead: 0 });
    expect(report.failSafeReason).toMatch(/build history of app-build unreadable \(AccessDeniedException: User is not authorized\)/);
    expect(report.keptByReason).toMatchObject({ [KeepReason.HISTORY_UNAVAILABLE]: 5, [KeepReason.CHILD_OF_KEPT_INDEX]: 2 });
    expect(emf[0]).toMatchObject({ FailSafe: 1 });
  });

  test('reports partial delete failures without throwing', async () => {
    const failing = digestOf('old-a');
    ecr.failImage('BatchDeleteImage', failing, 'KmsError', 'kms unavailable');
    const { lines, result } = run(config());
    const report = await result;
    expect(report).toMatchObject({ deleted: 5, failures: 1, failureCodes: { KmsError: 1 }, bytesReclaimed: 4000 });
    expect(report.failureSamples).toEqual([{ digest: failing, code: 'KmsError', reason: 'kms unavailable' }]);
    expect(parsed(lines).emf[0]).toMatchObject({ DeleteFailures: 1, ImagesDeleted: 5 });
  });

  test('throws when every deletion fails, after logging the report and metrics', async () => {
    ecr.failCall('BatchDeleteImage', ecrError('AccessDeniedException', 'denied'));
    const { lines, result } = run(config());
    await expect(result).rejects.toThrow(/all 6 deletions failed \(\{"AccessDeniedException":6\}\)/);
    expect(parsed(lines).report).toMatchObject({ deleted: 0, failures: 6 });
    expect(parsed(lines).emf[0]).toMatchObject({ DeleteFailures: 6 });
  });

  test('throws when the repository cannot be read', async () => {
    ecr = new FakeEcr({ repositoryName: 'other-repository' });
    const { lines, result } = run(config());
    await expect(result).rejects.toThrow(/cannot read repository app-cache: RepositoryNotFoundException: The repository with name 'app-cache'/);
    expect(lines).toEqual([]);
  });

  test('an index it cannot read blocks every deletion, and the metric says so', async () => {
    ecr.failImage('BatchGetImage', digestOf('old-idx'), 'KmsError', 'kms unavailable');
    const { lines, result } = run(config({ idleTimeoutSeconds: 25 * 24 * 3600 }));
    const report = await result;
    // old-idx is kept under this idle timeout and could be the parent of anything: old-a, old-b, both overwritten
    // manifests and old-idx-child all wait.
    expect(report).toMatchObject({ planned: 0, deleted: 0, indexReadFailures: 1, keptByReason: { [KeepReason.INDEX_CHILDREN_UNKNOWN]: 5 } });
    expect(ecr.callCount('BatchDeleteImage')).toBe(0);
    expect(parsed(lines).emf[0]).toMatchObject({ IndexReadFailures: 1 });
  });

  test('an empty repository is a quiet run', async () => {
    ecr = new FakeEcr({ repositoryName: 'app-cache' });
    const report = await run(config()).result;
    expect(report).toMatchObject({ scanned: 0, deleted: 0, planned: 0 });
    expect(ecr.callCount('BatchDeleteImage')).toBe(0);
  });
});

describe('handler', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
    jest.restoreAllMocks();
    jest.useRealTimers();
  });

  test('reads its configuration from the environment and writes the report and EMF lines raw to stdout', async () => {
    Object.assign(process.env, {
      CACHE_REPOSITORY_NAME: 'app-cache', PROJECT_NAME: 'app-build', DRY_RUN: 'true', METRICS_NAMESPACE: 'Env/Cache',
      POLICY: JSON.stringify({ defaultBranchTag: 'main', maxDeleteFraction: 1 }), AWS_REGION: 'us-east-1',
    });
    // handler() makes its own clients: answer them from the fakes.
    const makeEcr = ecrAdapter.createEcrClient;
    const makeCodeBuild = codebuildAdapter.createCodeBuildClient;
    jest.spyOn(ecrAdapter, 'createEcrClient').mockImplementation(cfg => ecr.attach(makeEcr(cfg)));
    jest.spyOn(codebuildAdapter, 'createCodeBuildClient').mockImplementation(cfg => codebuild.attach(makeCodeBuild(cfg)));
    const written: string[] = [];
    jest.spyOn(process.stdout, 'write').mockImplementation(chunk => {
      written.push(String(chunk));
      return true;
    });
    // Only Date is faked: the handler's clock is Date.now.
    jest.useFakeTimers({ now: NOW, doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'requestAnimationFrame',
      'cancelAnimationFrame', 'requestIdleCallback', 'cancelIdleCallback', 'setImmediate', 'clearImmediate', 'setInterval',
      'clearInterval', 'setTimeout', 'clearTimeout'] });
    const report = await handler();
    expect(report).toMatchObject({ dryRun: true, planned: 6 });
    expect(written).toHaveLength(2 + Object.values(DeleteReason).length);
    for (const line of written) expect(line.endsWith('\n')).toBe(true);
    expect(JSON.parse(written[0]).message).toBe('cache-cleanup report');
    expect(JSON.parse(written[1])._aws.CloudWatchMetrics[0].Namespace).toBe('Env/Cache');
    expect(ecr.callCount('BatchDeleteImage')).toBe(0);
  });

  test('throws on a bad environment instead of guessing', async () => {
    delete process.env.POLICY;
    await expect(handler()).rejects.toThrow(/POLICY is not set/);
  });
});
