import { IMAGE_NAME, MAX_IMAGE_NAME_LENGTH } from '../../lib/build-script/cache-refs';
import {
  CLEANUP_POLICY_FIELDS, CleanupPolicy, CleanupProject, DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_MAX_DELETE_FRACTION, DEFAULT_MAX_DELETES_PER_RUN,
  DEFAULT_METRICS_NAMESPACE, DEFAULT_UNTAGGED_GRACE_PERIOD_SECONDS, ResolvedCleanupPolicy,
} from './contract';

/** Everything one run needs to know, read from the function's environment. */
export interface CleanupConfig {
  readonly repositoryName: string;
  /** The first project: the one the report names. */
  readonly projectName: string;
  /**
   * Every project whose builds use the repository, each with its default branch's tag (the first is `projectName`'s).
   * @default - `projectName` alone, with the policy's `defaultBranchTag`
   */
  readonly projects?: readonly CleanupProject[];
  readonly policy: ResolvedCleanupPolicy;
  readonly dryRun: boolean;
  readonly metricsNamespace: string;
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

function positiveInteger(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`cache cleanup policy: ${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function bool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new Error(`cache cleanup policy: ${name} must be a boolean, got ${JSON.stringify(value)}`);
  return value;
}

/** Applies the defaults and rejects values that would make the planner delete the wrong things. */
export function resolvePolicy(input: CleanupPolicy): ResolvedCleanupPolicy {
  // The construct and this function ship together: a field this version does not know (one removed, like maxRefsPerBranch,
  // or one from a newer construct) would otherwise be ignored without a word.
  const unknown = Object.keys(input).filter(k => !(CLEANUP_POLICY_FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new Error(`cache cleanup policy: unknown field ${unknown.join(', ')} (known: ${CLEANUP_POLICY_FIELDS.join(', ')})`);
  }
  if (typeof input.defaultBranchTag !== 'string' || !TAG.test(input.defaultBranchTag)) {
    throw new Error(`cache cleanup policy: defaultBranchTag must be an image tag, got ${JSON.stringify(input.defaultBranchTag)}`);
  }
  const fraction = input.maxDeleteFraction ?? DEFAULT_MAX_DELETE_FRACTION;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
    throw new Error(`cache cleanup policy: maxDeleteFraction must be in (0, 1], got ${JSON.stringify(fraction)}`);
  }
  return {
    defaultBranchTag: input.defaultBranchTag,
    idleTimeoutSeconds: positiveInteger('idleTimeoutSeconds', input.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS, 1),
    untaggedGracePeriodSeconds: positiveInteger(
      'untaggedGracePeriodSeconds', input.untaggedGracePeriodSeconds ?? DEFAULT_UNTAGGED_GRACE_PERIOD_SECONDS, 0),
    maxCacheBytes: input.maxCacheBytes === undefined ? undefined : positiveInteger('maxCacheBytes', input.maxCacheBytes, 0),
    maxDeletesPerRun: positiveInteger('maxDeletesPerRun', input.maxDeletesPerRun ?? DEFAULT_MAX_DELETES_PER_RUN, 1),
    maxDeleteFraction: fraction,
    allowLargeDeletes: bool('allowLargeDeletes', input.allowLargeDeletes ?? false),
    trustIndexPullTime: bool('trustIndexPullTime', input.trustIndexPullTime ?? false),
  };
}

function required(env: Readonly<Record<string, string | undefined>>, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`cache cleanup: environment variable ${name} is not set`);
  return value;
}

/** Reads and validates the environment the construct sets (see `CleanupFunctionEnvironment`). */
export function readConfig(env: Readonly<Record<string, string | undefined>>): CleanupConfig {
  const rawPolicy = required(env, 'POLICY');
  let parsed: unknown;
  try {
    parsed = JSON.parse(rawPolicy);
  } catch (e) {
    throw new Error(`cache cleanup: POLICY is not JSON (${(e as Error).message}): ${rawPolicy.slice(0, 200)}`, { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`cache cleanup: POLICY must be a JSON object, got ${rawPolicy.slice(0, 200)}`);
  }
  const dryRun = env.DRY_RUN ?? 'false';
  if (dryRun !== 'true' && dryRun !== 'false') throw new Error(`cache cleanup: DRY_RUN must be 'true' or 'false', got '${dryRun}'`);
  const policy = resolvePolicy(parsed as CleanupPolicy);
  const projects = env.PROJECTS ? readProjects(env.PROJECTS) : [{ projectName: required(env, 'PROJECT_NAME'), defaultBranchTag: policy.defaultBranchTag }];
  return {
    repositoryName: required(env, 'CACHE_REPOSITORY_NAME'),
    projectName: projects[0].projectName,
    projects,
    policy,
    dryRun: dryRun === 'true',
    metricsNamespace: env.METRICS_NAMESPACE || DEFAULT_METRICS_NAMESPACE,
  };
}

/** Parses and checks `PROJECTS` (see `CleanupFunctionEnvironment`): a project listed twice, or none, is a construct bug. */
export function readProjects(raw: string): CleanupProject[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new Error(`cache cleanup: PROJECTS is not JSON (${(e as Error).message}): ${raw.slice(0, 200)}`, { cause: e });
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new Error(`cache cleanup: PROJECTS must be a non-empty JSON array, got ${raw.slice(0, 200)}`);
  const seen = new Set<string>();
  return parsed.map((p: unknown, i) => {
    const o = (typeof p === 'object' && p !== null ? p : {}) as Record<string, unknown>;
    const unknown = Object.keys(o).filter(k => !['projectName', 'defaultBranchTag', 'imageName'].includes(k));
    if (unknown.length > 0) throw new Error(`cache cleanup: PROJECTS[${i}] has unknown field ${unknown.join(', ')}`);
    if (typeof o.projectName !== 'string' || o.projectName === '') {
      throw new Error(`cache cleanup: PROJECTS[${i}].projectName must be a project name, got ${JSON.stringify(o.projectName)}`);
    }
    if (seen.has(o.projectName)) throw new Error(`cache cleanup: PROJECTS lists project ${o.projectName} twice`);
    seen.add(o.projectName);
    if (typeof o.defaultBranchTag !== 'string' || !TAG.test(o.defaultBranchTag)) {
      throw new Error(`cache cleanup: PROJECTS[${i}].defaultBranchTag must be an image tag, got ${JSON.stringify(o.defaultBranchTag)}`);
    }
    if (o.imageName !== undefined && (typeof o.imageName !== 'string' || !IMAGE_NAME.test(o.imageName) || o.imageName.length > MAX_IMAGE_NAME_LENGTH)) {
      throw new Error(`cache cleanup: PROJECTS[${i}].imageName must be an image name, got ${JSON.stringify(o.imageName)}`);
    }
    return o.imageName === undefined
      ? { projectName: o.projectName, defaultBranchTag: o.defaultBranchTag }
      : { projectName: o.projectName, defaultBranchTag: o.defaultBranchTag, imageName: o.imageName };
  });
}
