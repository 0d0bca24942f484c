// The public API, named export by export: what users instantiate, configure and read. jsii compiles exactly this to
// every target language (see API.md). Validators, the build-script model and its renderers, free functions and
// constants stay internal: the construct exposes what is useful of them as members (renderScript(), branchCacheTag(), ...).
export { CachedImageBuild } from './cached-image-build';
export type { CachedImageBuildProps, CachedImageBuildActionOptions } from './cached-image-build';
export { CachedImageBuildGroup } from './cached-image-build-group';
export type { CachedImageBuildGroupProps } from './cached-image-build-group';
export { CachedMultiPlatformImageBuild } from './cached-multi-platform-image-build';
export type { CachedMultiPlatformImageBuildProps, NativePlatform } from './cached-multi-platform-image-build';
export { CacheCompression, CacheStrategy, CacheStrategyKind } from './cache-strategy';
export type { RegistryCacheOptions } from './cache-strategy';
export { ImageRepositories } from './image-repositories';
export type { ImageRepositoryOptions, ImageRepositoriesProps } from './image-repositories';
export { CacheCleanup } from './cache-cleanup';
export type { CacheCleanupProps } from './cache-cleanup';
export type { CacheCleanupOptions } from './cache-cleanup-options';
export { BuildMetric, BuildMetricDimension, CacheObservability } from './cache-observability';
export type { CacheDashboardOptions, CacheHitAlarmOptions, CacheObservabilityProps } from './cache-observability';
