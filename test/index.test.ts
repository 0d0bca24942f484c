import * as api from '../lib';

describe('the public API (lib/index.ts)', () => {
  test('is the constructs, their options, the strategy and the metric names: nothing else at run time', () => {
    // Interfaces exist only as types; validators, the BuildScript model, free functions and constants are internal.
    // Adding a name here is a decision about the public API: jsii compiles it to every language (API.md).
    expect(Object.keys(api).sort()).toEqual([
      'BuildMetric', 'BuildMetricDimension', 'CacheCleanup', 'CacheCompression', 'CacheObservability', 'CacheStrategy', 'CacheStrategyKind',
      'CachedImageBuild', 'CachedImageBuildGroup', 'CachedMultiPlatformImageBuild', 'ImageRepositories',
    ]);
  });
});
