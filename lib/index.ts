export * from './cache-strategy';
export * from './cached-image-build';
export * from './image-repositories';
export * from './cache-cleanup-options';
export { BuildScript, EXPORTED_VARIABLES, DEFAULT_BUILDKIT_IMAGE, ARTIFACT_FILES } from './build-script/build-script';
export type { BuildScriptOptions, BuildPhase, BuildStep } from './build-script/build-script';
export { branchTag, planCacheRefs } from './build-script/cache-refs';
export type { CacheRefPlan } from './build-script/cache-refs';
export * from './cache-cleanup';
