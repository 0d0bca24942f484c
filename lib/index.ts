export * from './cache-strategy';
export { BuildScript, EXPORTED_VARIABLES, DEFAULT_BUILDKIT_IMAGE } from './build-script/build-script';
export type { BuildScriptOptions, BuildPhase, BuildStep } from './build-script/build-script';
export { branchTag, planCacheRefs } from './build-script/cache-refs';
export type { CacheRefPlan } from './build-script/cache-refs';
