import { stringify } from 'yaml';
import { buildahEngine } from './buildah';
import { BRANCH_TAG_SHELL } from './cache-refs';
import { BUILDAH_STEPS_AWK, BUILDKIT_STEPS_AWK, COUNT_STEPS_SHELL, REPORT_SHELL } from './cache-report.sh';
import { EngineScript, StrategyName } from './engine';
import { inlineEngine } from './inline';
import { registryEngine } from './registry';
import { ECR_HOST_PATTERN, LOCAL_REGISTRY_SHELL, MANIFEST_BLOBS_SHELL, shArray, shq } from './shell';

/** The variables every build exports (CodeBuild `exported-variables`). */
export const EXPORTED_VARIABLES = [
  'IMAGE_URI', 'IMAGE_TAG', 'IMAGE_DIGEST', 'CACHE_REFS_READ', 'CACHE_REF_WRITTEN',
  'CACHE_STEPS_TOTAL', 'CACHE_STEPS_CACHED', 'CACHE_HIT_RATIO',
] as const;

/** The default BuildKit image for the docker-container builder (buildx's own default). */
export const DEFAULT_BUILDKIT_IMAGE = 'moby/buildkit:buildx-stable-1';

/** Everything a build script is rendered from. Plain data: no CDK types. */
export interface BuildScriptOptions {
  readonly strategy: StrategyName;
  /** Default for `APP_REPOSITORY_URI` (the environment wins). */
  readonly appRepositoryUri?: string;
  /** Default for `CACHE_REPOSITORY_URI` (the environment wins). */
  readonly cacheRepositoryUri?: string;
  /** Dockerfile path, relative to the source root. @default 'Dockerfile' */
  readonly dockerfile?: string;
  /** Build context directory, relative to the source root. @default '.' */
  readonly context?: string;
  /** Branch whose cache every branch falls back to. @default 'main' */
  readonly defaultBranch?: string;
  /** Shell glob patterns of branches that read the cache but never write it. @default [] */
  readonly readOnlyBranches?: readonly string[];
  /** Whether builds write cache at all. @default true */
  readonly cacheWrite?: boolean;
  /** `--build-arg` values. @default {} */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Build secrets: id → name of the environment variable holding the value. @default {} */
  readonly buildSecretEnv?: Readonly<Record<string, string>>;
  /** `--target` stage. @default - the last stage */
  readonly target?: string;
  /** `--platform`. @default - the engine's platform */
  readonly platform?: string;
  /** BuildKit image for the docker-container builder (registry strategy). @default DEFAULT_BUILDKIT_IMAGE */
  readonly buildkitImage?: string;
  /** Container name written to imagedefinitions.json (ECS standard deployments). @default 'app' */
  readonly containerName?: string;
  /** Publish per-build cache metrics to CloudWatch when running in CodeBuild (`CIB_METRICS=false` turns it off). @default true */
  readonly metrics?: boolean;
}

/** CloudWatch namespace of the build metrics (and of the cleanup's). */
export const BUILD_METRICS_NAMESPACE = 'CachedImageBuild';
/** The metrics each build publishes, with dimensions `Project` and `Branch`. */
export const BUILD_METRICS = ['CacheHitRatio', 'StepsExecuted', 'StepsCached', 'CacheBytesPushed', 'BuildSeconds'] as const;

/** Where the buildspec writes imagedefinitions.json and imageDetail.json, relative to the source root. */
export const ARTIFACTS_DIR = '.cached-build-artifacts';
/** The files of the output artifact. */
export const ARTIFACT_FILES = ['imagedefinitions.json', 'imageDetail.json', 'cache-report.json'] as const;

/** One named unit of shell work; a phase runs its steps in order. */
export interface BuildStep {
  readonly name: 'setup' | 'login' | 'refs' | 'build' | 'cache' | 'report';
  readonly description: string;
}

/** CodeBuild's phases, in order, with the steps each one runs. */
export interface BuildPhase {
  readonly name: 'install' | 'pre_build' | 'build' | 'post_build';
  readonly steps: readonly BuildStep[];
}

const PHASES: readonly BuildPhase[] = [
  { name: 'install', steps: [{ name: 'setup', description: 'check the engine, prepare a builder' }] },
  {
    name: 'pre_build', steps: [
      { name: 'login', description: 'log in to ECR registries (skipped for local registries)' },
      { name: 'refs', description: 'resolve the image tag, the branch and the cache refs' },
    ],
  },
  {
    name: 'build', steps: [
      { name: 'build', description: 'build with remote cache and push the app image' },
      { name: 'cache', description: 'export cache only when a step executed' },
    ],
  },
  { name: 'post_build', steps: [{ name: 'report', description: 'print the cache report, write the exports' }] },
];

/** Where the buildspec keeps the script and its state between phases. */
const BUILDSPEC_WORK_DIR = '/tmp/cached-build';

/**
 * The build as a model — phases of named shell steps plus exported variables — and its two renderings:
 * a standalone bash script and a CodeBuild buildspec. Both carry the same script text; the buildspec
 * writes it to disk once and runs each phase's steps from it, so what the engine tests run is exactly
 * what CodeBuild runs.
 */
export class BuildScript {
  public readonly phases: readonly BuildPhase[] = PHASES;
  public readonly exportedVariables: readonly string[] = EXPORTED_VARIABLES;
  private readonly engine: EngineScript;

  constructor(public readonly options: BuildScriptOptions) {
    this.engine = engineFor(options.strategy);
  }

  /** The standalone bash script: `bash script.sh` runs every step; `bash script.sh build cache` runs some. */
  public renderScript(): string {
    const o = this.options;
    const buildArgs = Object.entries(o.buildArgs ?? {}).map(([k, v]) => `${k}=${v}`);
    const secrets = Object.entries(o.buildSecretEnv ?? {}).map(([id, env]) => `${id}=${env}`);
    const stepNames = this.phases.flatMap(p => p.steps.map(s => s.name));
    return `#!/usr/bin/env bash
# Generated by cdk-cached-image-build (strategy: ${o.strategy}). Regenerate with \`cached-build script\`; do not edit.
# Usage: bash cached-build.sh [${stepNames.join('|')} ...]   (no argument: every step in order)
# Inputs: APP_REPOSITORY_URI, CACHE_REPOSITORY_URI, IMAGE_TAG (default: the commit), CACHE_BRANCH (default: the branch),
#         CIB_NETWORK (docker --network for RUN steps), CIB_WORK_DIR (state between steps),
#         CIB_ARTIFACTS_DIR (where to write imagedefinitions.json and imageDetail.json; unset: not written).
# shellcheck disable=SC2016 # single-quoted $ is literal on purpose: awk programs, user values
set -euo pipefail

# ---- configuration (rendered; the environment overrides the repositories) ----
CIB_STRATEGY=${shq(o.strategy)}
APP_REPOSITORY_URI="\${APP_REPOSITORY_URI:-${shEscapeDq(o.appRepositoryUri ?? '')}}"
CACHE_REPOSITORY_URI="\${CACHE_REPOSITORY_URI:-${shEscapeDq(o.cacheRepositoryUri ?? '')}}"
CIB_DOCKERFILE=${shq(o.dockerfile ?? 'Dockerfile')}
CIB_CONTEXT=${shq(o.context ?? '.')}
CIB_DEFAULT_BRANCH=${shq(o.defaultBranch ?? 'main')}
CIB_READ_ONLY_BRANCHES=${shArray(o.readOnlyBranches ?? [])}
CIB_CACHE_WRITE=${o.cacheWrite === false ? 'false' : 'true'}
CIB_BUILD_ARGS=${shArray(buildArgs)}
CIB_SECRETS=${shArray(secrets)}
CIB_CONTAINER_NAME=${shq(o.containerName ?? 'app')}
CIB_TARGET=${shq(o.target ?? '')}
CIB_PLATFORM=${shq(o.platform ?? '')}
${o.strategy === 'registry' ? `CIB_BUILDKIT_IMAGE=${shq(o.buildkitImage ?? DEFAULT_BUILDKIT_IMAGE)}\n` : ''}CIB_EXPORTED_VARIABLES=${shq(this.exportedVariables.join(' '))}
CIB_METRICS="\${CIB_METRICS:-${o.metrics === false ? 'false' : 'true'}}"
CIB_METRICS_NAMESPACE=${BUILD_METRICS_NAMESPACE}
CIB_STEPS_AWK=${shq((this.engine.logFormat === 'buildah' ? BUILDAH_STEPS_AWK : BUILDKIT_STEPS_AWK).trim())}

# ---- library ----
cib_log() { printf '[cached-build] %s\\n' "$*" >&2; }
cib_warn() { printf '[cached-build] WARNING: %s\\n' "$*" >&2; }
cib_die() { printf '[cached-build] ERROR: %s\\n' "$*" >&2; exit 1; }

# State survives between steps (CodeBuild runs each phase's steps in a new bash).
cib_state_set() {
  printf -v "$1" '%s' "$2"
  printf '%s=%q\\n' "$1" "$2" >> "$CIB_WORK_DIR/state.env"
}
cib_load_state() {
  if [ -f "$CIB_WORK_DIR/state.env" ]; then
    # shellcheck disable=SC1091
    . "$CIB_WORK_DIR/state.env"
  fi
}

${BRANCH_TAG_SHELL}

${LOCAL_REGISTRY_SHELL}

${MANIFEST_BLOBS_SHELL}

cib_registry_hosts() {
  printf '%s\\n' "\${APP_REPOSITORY_URI%%/*}" "\${CACHE_REPOSITORY_URI%%/*}" | awk 'NF && !seen[$0]++'
}

# Build secrets reach the engine as files readable only by us (every engine accepts src=), never as args.
cib_build_flags() {
  local arg id var
  CIB_FLAGS=(--file "$CIB_DOCKERFILE")
  for arg in "\${CIB_BUILD_ARGS[@]}"; do CIB_FLAGS+=(--build-arg "$arg"); done
  for arg in "\${CIB_SECRETS[@]}"; do
    id="\${arg%%=*}"
    var="\${arg#*=}"
    [ -n "\${!var:-}" ] || cib_die "build secret '$id': environment variable $var is empty"
    (umask 077 && mkdir -p "$CIB_WORK_DIR/secrets" && printf '%s' "\${!var}" > "$CIB_WORK_DIR/secrets/$id")
    CIB_FLAGS+=(--secret "id=$id,src=$CIB_WORK_DIR/secrets/$id")
  done
  if [ -n "$CIB_TARGET" ]; then CIB_FLAGS+=(--target "$CIB_TARGET"); fi
  if [ -n "$CIB_PLATFORM" ]; then CIB_FLAGS+=(--platform "$CIB_PLATFORM"); fi
  if [ -n "\${CIB_NETWORK:-}" ]; then CIB_FLAGS+=(--network "$CIB_NETWORK"); fi
}

${COUNT_STEPS_SHELL}

# ---- engine: ${o.strategy} ----
${this.engine.functions}

# ---- steps ----
cib_step_setup() {
  cib_state_set CIB_STARTED_AT "$(date +%s)"
  cib_engine_setup
}

cib_step_login() {
  local host region
  for host in $(cib_registry_hosts); do
    if cib_is_local_registry "$host"; then
      cib_log "registry $host: local, no login"
    elif printf '%s' "$host" | grep -Eq ${shq(ECR_HOST_PATTERN)}; then
      region=$(printf '%s' "$host" | cut -d . -f 4)
      command -v aws >/dev/null 2>&1 || cib_die "the AWS CLI is needed to log in to $host"
      aws ecr get-login-password --region "$region" | cib_engine_login "$host" \\
        || cib_die "login to $host failed"
      cib_log "registry $host: logged in"
    else
      cib_log "registry $host: not ECR, using the engine's existing credentials"
    fi
  done
}

cib_step_refs() {
  [ -n "$APP_REPOSITORY_URI" ] || cib_die 'APP_REPOSITORY_URI is not set (the app repository, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app)'
  [ -n "$CACHE_REPOSITORY_URI" ] || cib_die 'CACHE_REPOSITORY_URI is not set (the cache repository)'
  local tag="\${IMAGE_TAG:-\${CODEBUILD_RESOLVED_SOURCE_VERSION:-}}"
  if [ -z "$tag" ]; then tag=$(git rev-parse HEAD 2>/dev/null || true); fi
  [ -n "$tag" ] || cib_die 'IMAGE_TAG is not set and no commit is known (no CODEBUILD_RESOLVED_SOURCE_VERSION, not a git checkout)'
  tag=$(cib_branch_tag "$tag")
  local branch="\${CACHE_BRANCH:-}"
  if [ -z "$branch" ] && [ -n "\${CODEBUILD_WEBHOOK_HEAD_REF:-}" ]; then branch="\${CODEBUILD_WEBHOOK_HEAD_REF#refs/heads/}"; fi
  if [ -z "$branch" ] && [ -n "\${CODEBUILD_SOURCE_VERSION:-}" ]; then
    case "$CODEBUILD_SOURCE_VERSION" in
      refs/heads/*) branch="\${CODEBUILD_SOURCE_VERSION#refs/heads/}" ;;
      pr/*|arn:*|*/*|'') ;;
      *) if ! printf '%s' "$CODEBUILD_SOURCE_VERSION" | grep -Eq '^[0-9a-f]{40}$'; then branch="$CODEBUILD_SOURCE_VERSION"; fi ;;
    esac
  fi
  if [ -z "$branch" ]; then
    branch=$(git symbolic-ref --short -q HEAD 2>/dev/null || true)
  fi
  if [ -z "$branch" ]; then
    cib_warn "branch unknown (set CACHE_BRANCH): using the default branch $CIB_DEFAULT_BRANCH"
    branch="$CIB_DEFAULT_BRANCH"
  fi
  local current fallback read write='' pattern
  current=$(cib_branch_tag "$branch")
  fallback=$(cib_branch_tag "$CIB_DEFAULT_BRANCH")
  read="$current"
  if [ "$fallback" != "$current" ]; then read="$current $fallback"; fi
  if [ "$CIB_CACHE_WRITE" = true ] && [ "\${CACHE_READ_ONLY:-}" != 1 ]; then write="$current"; fi
  for pattern in "\${CIB_READ_ONLY_BRANCHES[@]}"; do
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    if [[ $branch == $pattern ]]; then write=''; fi
  done
  cib_state_set IMAGE_TAG "$tag"
  cib_state_set IMAGE_URI "$APP_REPOSITORY_URI:$tag"
  cib_state_set CACHE_BRANCH "$branch"
  cib_state_set CACHE_READ_TAGS "$read"
  cib_state_set CACHE_WRITE_TAG "$write"
  cib_state_set CACHE_REFS_READ "\${read// /,}"
  cib_state_set CACHE_REF_WRITTEN ''
  cib_state_set CACHE_BYTES_PUSHED 0
  cib_log "image $IMAGE_URI; branch $branch; cache read: $read; cache write: \${write:-none (read-only)}"
}

cib_step_build() {
  trap 'rm -rf "$CIB_WORK_DIR/secrets"' EXIT
  cib_build_flags
  # What the cache repository holds before this build exports anything, read while the engine builds.
  local snapshot=''
  if [ -n "$CACHE_WRITE_TAG" ]; then
    (cib_engine_cache_snapshot || true) &
    snapshot=$!
  fi
  cib_engine_build
  if [ -n "$snapshot" ]; then wait "$snapshot" || true; fi
  local log="$CIB_WORK_DIR/build.log"
  # buildah's log has no step times: its timestamped copy gives them.
  if [ -s "$CIB_WORK_DIR/build.tlog" ]; then log="$CIB_WORK_DIR/build.tlog"; fi
  cib_count_steps "$log" "$CIB_WORK_DIR/steps.tsv"
}

cib_step_cache() {
  local executed=$(( \${CACHE_STEPS_TOTAL:-0} - \${CACHE_STEPS_CACHED:-0} ))
  if [ -z "$CACHE_WRITE_TAG" ]; then
    cib_log 'cache: read-only for this build, nothing exported'
  elif [ "$executed" -eq 0 ]; then
    cib_log 'cache: every step came from cache, nothing exported'
  else
    trap 'rm -rf "$CIB_WORK_DIR/secrets"' EXIT
    cib_build_flags
    if cib_engine_cache_push; then
      cib_state_set CACHE_REF_WRITTEN "$(cib_engine_written_refs | paste -sd , -)"
      cib_state_set CACHE_BYTES_PUSHED "$(cib_engine_cache_bytes || echo 0)"
      cib_log "cache: $executed step(s) executed, exported to $CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG"
    else
      cib_state_set CIB_CACHE_EXPORT_FAILED 1
      cib_warn "cache export to $CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG failed; the image is built and pushed"
      if [ -f "$CIB_WORK_DIR/cache-push.log" ]; then tail -n 20 "$CIB_WORK_DIR/cache-push.log" >&2; fi
    fi
  fi
}

${REPORT_SHELL}

cib_main() {
  if [ "$#" -eq 0 ]; then set -- ${stepNames.join(' ')}; fi
  if [ -z "\${CIB_WORK_DIR:-}" ]; then CIB_WORK_DIR=$(mktemp -d "\${TMPDIR:-/tmp}/cached-build.XXXXXX"); fi
  mkdir -p "$CIB_WORK_DIR"
  local step
  for step in "$@"; do
    case "$step" in
      ${stepNames.join('|')}) ;;
      *) cib_die "unknown step '$step' (steps: ${stepNames.join(' ')})" ;;
    esac
  done
  # A build starts with setup: whatever an earlier build left in the work dir is not its state.
  if [ "$1" = setup ]; then : > "$CIB_WORK_DIR/state.env"; fi
  for step in "$@"; do
    cib_load_state
    "cib_step_$step"
  done
}

cib_main "$@"
`;
  }

  /** The buildspec as an object (version 0.2, bash, exported variables, the ECS artifact files). */
  public renderBuildSpecObject(): Record<string, unknown> {
    const script = this.renderScript();
    const phases: Record<string, unknown> = {};
    for (const phase of this.phases) {
      const commands: string[] = [];
      if (phase.name === 'install') {
        commands.push(`mkdir -p "$CIB_WORK_DIR" && cat > "$CIB_SCRIPT" <<'CACHED_BUILD_SCRIPT'\n${script}CACHED_BUILD_SCRIPT`);
      }
      commands.push(`bash "$CIB_SCRIPT" ${phase.steps.map(s => s.name).join(' ')}`);
      if (phase.name === 'post_build') {
        commands.push('. "$CIB_WORK_DIR/exports.env"');
      }
      phases[phase.name] = { 'on-failure': 'ABORT', 'commands': commands };
    }
    return {
      'version': '0.2',
      'env': {
        'shell': 'bash',
        'variables': { CIB_WORK_DIR: BUILDSPEC_WORK_DIR, CIB_SCRIPT: `${BUILDSPEC_WORK_DIR}/cached-build.sh`, CIB_ARTIFACTS_DIR: ARTIFACTS_DIR },
        'exported-variables': [...this.exportedVariables],
      },
      phases,
      'artifacts': { 'files': [...ARTIFACT_FILES], 'base-directory': ARTIFACTS_DIR },
    };
  }

  /** The buildspec as `buildspec.yml` text. */
  public renderBuildSpecYaml(): string {
    return stringify(this.renderBuildSpecObject(), { lineWidth: 0, blockQuote: 'literal' });
  }
}

function engineFor(strategy: StrategyName): EngineScript {
  switch (strategy) {
    case 'registry': return registryEngine();
    case 'inline': return inlineEngine();
    case 'buildah': return buildahEngine();
    default: throw new Error(`unknown cache strategy '${strategy as string}' (expected registry, inline or buildah)`);
  }
}

/** Escapes a value for use inside bash double quotes. */
function shEscapeDq(value: string): string {
  return value.replace(/[\\"$`]/g, c => `\\${c}`);
}
