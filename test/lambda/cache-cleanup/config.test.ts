import { readConfig, resolvePolicy } from '../../../lambda/cache-cleanup/config';
import {
  CleanupFunctionEnvironment, DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_MAX_DELETE_FRACTION, DEFAULT_MAX_DELETES_PER_RUN,
  DEFAULT_UNTAGGED_GRACE_PERIOD_SECONDS,
} from '../../../lambda/cache-cleanup/contract';

const ENV: CleanupFunctionEnvironment = {
  CACHE_REPOSITORY_NAME: 'app-cache',
  PROJECT_NAME: 'app-build',
  POLICY: JSON.stringify({ defaultBranchTag: 'main', maxCacheBytes: 5e9 }),
  DRY_RUN: 'false',
  METRICS_NAMESPACE: 'Team/Cache',
};

describe('resolvePolicy', () => {
  test('applies the documented defaults', () => {
    expect(resolvePolicy({ defaultBranchTag: 'main' })).toEqual({
      defaultBranchTag: 'main',
      idleTimeoutSeconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
      untaggedGracePeriodSeconds: DEFAULT_UNTAGGED_GRACE_PERIOD_SECONDS,
      maxCacheBytes: undefined,
      maxDeletesPerRun: DEFAULT_MAX_DELETES_PER_RUN,
      maxDeleteFraction: DEFAULT_MAX_DELETE_FRACTION,
      allowLargeDeletes: false,
      trustIndexPullTime: false,
    });
    expect(DEFAULT_IDLE_TIMEOUT_SECONDS).toBe(14 * 86400);
    expect(DEFAULT_UNTAGGED_GRACE_PERIOD_SECONDS).toBe(86400);
  });

  test.each([
    [{ defaultBranchTag: '' }, /defaultBranchTag must be an image tag, got ""/],
    [{ defaultBranchTag: 'feature/x' }, /defaultBranchTag must be an image tag, got "feature\/x"/],
    [{ defaultBranchTag: 'main', idleTimeoutSeconds: 0 }, /idleTimeoutSeconds must be an integer >= 1, got 0/],
    [{ defaultBranchTag: 'main', untaggedGracePeriodSeconds: -1 }, /untaggedGracePeriodSeconds must be an integer >= 0, got -1/],
    [{ defaultBranchTag: 'main', maxCacheBytes: 1.5 }, /maxCacheBytes must be an integer >= 0, got 1.5/],
    [{ defaultBranchTag: 'main', maxDeletesPerRun: 0 }, /maxDeletesPerRun must be an integer >= 1, got 0/],
    [{ defaultBranchTag: 'main', maxDeleteFraction: 0 }, /maxDeleteFraction must be in \(0, 1\], got 0/],
    [{ defaultBranchTag: 'main', maxDeleteFraction: 1.5 }, /maxDeleteFraction must be in \(0, 1\], got 1.5/],
    [{ defaultBranchTag: 'main', allowLargeDeletes: 'yes' }, /allowLargeDeletes must be a boolean, got "yes"/],
    [{ defaultBranchTag: 'main', trustIndexPullTime: 1 }, /trustIndexPullTime must be a boolean, got 1/],
    // A field this function does not know means the construct and the function disagree: fail rather than ignore it.
    [{ defaultBranchTag: 'main', maxRefsPerBranch: 2 }, /unknown field maxRefsPerBranch/],
  ])('rejects %j', (input, message) => {
    expect(() => resolvePolicy(input as never)).toThrow(message);
  });
});

describe('readConfig', () => {
  test('reads the environment the construct sets', () => {
    expect(readConfig(ENV)).toMatchObject({
      repositoryName: 'app-cache', projectName: 'app-build', dryRun: false, metricsNamespace: 'Team/Cache',
      policy: { defaultBranchTag: 'main', maxCacheBytes: 5e9 },
    });
    expect(readConfig({ ...ENV, DRY_RUN: 'true', METRICS_NAMESPACE: '' })).toMatchObject({ dryRun: true, metricsNamespace: 'CachedImageBuild' });
  });

  test('names the variable that is missing or wrong', () => {
    expect(() => readConfig({ ...ENV, CACHE_REPOSITORY_NAME: undefined })).toThrow(/CACHE_REPOSITORY_NAME is not set/);
    expect(() => readConfig({ ...ENV, PROJECT_NAME: '' })).toThrow(/PROJECT_NAME is not set/);
    expect(() => readConfig({ ...ENV, POLICY: '{oops' })).toThrow(/POLICY is not JSON .*: \{oops/);
    expect(() => readConfig({ ...ENV, POLICY: '[]' })).toThrow(/POLICY must be a JSON object/);
    expect(() => readConfig({ ...ENV, DRY_RUN: 'yes' })).toThrow(/DRY_RUN must be 'true' or 'false', got 'yes'/);
  });
});
