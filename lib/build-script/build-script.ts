import { createHash } from 'crypto';
import { stringify } from 'yaml';
import { buildahEngine } from './buildah';
import { BRANCH_TAG_SHELL } from './cache-refs';
import { BUILDAH_STEPS_AWK, BUILDKIT_STEPS_AWK, COUNT_STEPS_SHELL, REPORT_SHELL } from './cache-report.sh';
import { BuildConfig, CONFIG_SHELL, CONFIG_VARIABLES, configEnvironment } from './config';
import { EngineScript, StrategyName } from './engine';
import { inlineEngine } from './inline';
import { INPUTS_AWK, INPUTS_SHELL } from './inputs.sh';
import { registryEngine } from './registry';
import { MERGE_SHELL } from './merge.sh';
import { LOCAL_REGISTRY_SHELL, MANIFEST_BLOBS_SHELL, shq } from './shell';
import { STAGES_AWK } from './stages.sh';
import { LIBRARY_SHELL, mainShell, STEPS_SHELL } from './steps.sh';

export { DEFAULT_BUILDKIT_IMAGE } from './config';

/** The variables every build exports (CodeBuild `exported-variables`). */
export const EXPORTED_VARIABLES = [
  'IMAGE_URI', 'IMAGE_TAG', 'IMAGE_DIGEST', 'IMAGE_REUSED', 'CACHE_REFS_READ', 'CACHE_REF_WRITTEN',
  'CACHE_STEPS_TOTAL', 'CACHE_STEPS_CACHED', 'CACHE_HIT_RATIO',
] as const;

/** What a build script is rendered from: the strategy (which engine code the script holds) and the build's configuration. */
export interface BuildScriptOptions extends BuildConfig {
  readonly strategy: StrategyName;
}

/**
 * The build metrics' CloudWatch namespace is this prefix and the CodeBuild project's name: a project's role may publish in
 * its own namespace only (PutMetricData has no other IAM scope), so no build can write another project's metrics, nor the
 * cleanup's (namespace `CachedImageBuild`).
 */
export const BUILD_METRICS_NAMESPACE_PREFIX = 'CachedImageBuild/';

/** The namespace of one project's build metrics. */
export function buildMetricsNamespace(projectName: string): string {
  return `${BUILD_METRICS_NAMESPACE_PREFIX}${projectName}`;
}
/** The metrics each build publishes, with dimensions `Project` and `Branch`. */
export const BUILD_METRICS = ['CacheHitRatio', 'StepsExecuted', 'StepsCached', 'CacheBytesPushed', 'BuildSeconds'] as const;

/** Where the buildspec writes imagedefinitions.json and imageDetail.json, relative to the source root. */
export const ARTIFACTS_DIR = '.cached-build-artifacts';
/** The files of the output artifact. */
export const ARTIFACT_FILES = ['imagedefinitions.json', 'imageDetail.json', 'cache-report.json'] as const;

/**
 * CodeBuild refuses an inline buildspec longer than this ("Max buildspec length is 25600", InvalidInputException;
 * undocumented, see test/aws-contract.md).
 */
export const MAX_INLINE_BUILDSPEC_LENGTH = 25_600;

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
  { name: 'install', steps: [{ name: 'setup', description: 'check the engine and the configuration' }] },
  {
    name: 'pre_build', steps: [
      { name: 'login', description: 'log in to ECR registries (skipped for local registries)' },
      { name: 'refs', description: 'resolve the image tag, the branch and the cache refs; reuse an image whose tag or inputs exist' },
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

/** How the buildspec gets the script onto the build host. */
export enum ScriptDelivery {
  /** The script is written out of the buildspec itself (a here-document): self-contained, for a `buildspec.yml` in the source. */
  INLINE = 'inline',
  /**
   * The buildspec downloads the script from S3 (`CIB_SCRIPT_URL`, an `s3://` URL) and checks it against
   * `CIB_SCRIPT_SHA256`: the project's inline buildspec stays a page long, far under CodeBuild's limit, readable in the console.
   */
  S3 = 's3',
}

/** The here-document delimiter of an inline buildspec; the script never contains this line (a test checks it). */
export const HEREDOC_DELIMITER = 'CACHED_BUILD_SCRIPT';

/**
 * The build as a model — phases of named shell steps plus exported variables — and its renderings: a standalone bash
 * script, its configuration as environment variables, and a CodeBuild buildspec. The script depends on the strategy
 * only: configuration is never rendered into it, so every value stays data and every project of a strategy runs the
 * same, tested script.
 */
export class BuildScript {
  public readonly phases: readonly BuildPhase[] = PHASES;
  public readonly exportedVariables: readonly string[] = EXPORTED_VARIABLES;
  private readonly engine: EngineScript;
  private script?: string;

  constructor(public readonly options: BuildScriptOptions) {
    this.engine = engineFor(options.strategy);
  }

  /** The configuration as environment variables (values untouched: tokens stay tokens). */
  public environment(join?: (values: readonly string[]) => string): Record<string, string> {
    return configEnvironment(this.options, join);
  }

  /** SHA-256 (hex) of the standalone script. */
  public scriptSha256(): string {
    return createHash('sha256').update(this.renderScript()).digest('hex');
  }

  /** The standalone bash script: `bash script.sh` runs every step; `bash script.sh build cache` runs some. */
  public renderScript(): string {
    this.script ??= this.render();
    return this.script;
  }

  private render(): string {
    const strategy = this.options.strategy;
    const stepNames = this.phases.flatMap(p => p.steps.map(s => s.name));
    const width = Math.max(...CONFIG_VARIABLES.map(v => v.name.length));
    const configDoc = CONFIG_VARIABLES
      .map(v => `#   ${v.name.padEnd(width)}  ${v.doc}${v.default ? ` (default ${v.default})` : ''}`).join('\n');
    return `#!/usr/bin/env bash
# Generated by cdk-cached-image-build (strategy: ${strategy}). Regenerate with \`cached-build script\`; do not edit.
# Usage: bash cached-build.sh [${stepNames.join('|')} ...]   (no argument: every step in order)
#        bash cached-build.sh merge   (after one build per platform with CIB_PLATFORM_TAGS=true: their index, see CIB_MERGE_PLATFORMS)
# Configuration comes from the environment only (\`cached-build env\` prints it for a set of flags):
${configDoc}
# Per build: IMAGE_TAG (default: the commit), CACHE_BRANCH (default: the branch), CACHE_READ_ONLY=1 (write no cache),
#   CIB_NETWORK (docker --network for RUN steps), CIB_WORK_DIR (state between steps),
#   CIB_ARTIFACTS_DIR (where to write imagedefinitions.json, imageDetail.json, cache-report.json; unset: not written).
# shellcheck disable=SC2016 # single-quoted $ is literal on purpose: awk programs
set -Eeuo pipefail
# No silent exit: a command that stops the script says what it was (functions and subshells inherit the trap: -E).
trap 'printf "[cached-build] ERROR: %s failed (exit %s)\\n" "$BASH_COMMAND" "$?" >&2' ERR

# The state between steps (state.env), the exports of an earlier build, and this process's own: never taken from the
# environment (IMAGE_TAG and CACHE_BRANCH are configuration).
unset CIB_BUILDER CIB_CACHE_EXPORT_FAILED CIB_CACHE_PUSH_FAILED CIB_CONTAINERD_STORE CIB_FALLBACK CIB_HAS_BUILDX \\
  CIB_INLINE_WRITTEN CIB_INPUTS_TAG CIB_MERGED CIB_STARTED_AT CIB_STEPS_UNKNOWN CACHE_STEPS_TOTAL CACHE_STEPS_CACHED \\
  CACHE_HIT_RATIO CACHE_BYTES_PUSHED BUILD_SECONDS CIB_RECORD_PID CIB_ECR_PASSWORD CIB_ECR_PASSWORDS "\${!CIB_SECONDS_@}"
# The ECR password of each region asked in this process (cib_ecr_password), by region.
declare -gA CIB_ECR_PASSWORDS=()

CIB_STRATEGY=${strategy}
CIB_EXPORTED_VARIABLES=${shq(this.exportedVariables.join(' '))}
CIB_METRICS_NAMESPACE_PREFIX=${BUILD_METRICS_NAMESPACE_PREFIX}
CIB_INPUTS_AWK=${shq(INPUTS_AWK.trim())}
CIB_STEPS_AWK=${shq((this.engine.logFormat === 'buildah' ? BUILDAH_STEPS_AWK : BUILDKIT_STEPS_AWK).trim())}
${this.engine.logFormat === 'buildkit' ? `CIB_STAGES_AWK=${shq(STAGES_AWK.trim())}
` : ''}
# ---- configuration ----
${CONFIG_SHELL}

# ---- library ----
${LIBRARY_SHELL}

${BRANCH_TAG_SHELL}

${LOCAL_REGISTRY_SHELL}

${MANIFEST_BLOBS_SHELL}

${COUNT_STEPS_SHELL}

${INPUTS_SHELL}

# ---- engine: ${strategy} ----
${this.engine.functions}

# ---- steps ----
${STEPS_SHELL}

${REPORT_SHELL}

# ---- merge (the native multi-platform path: one index of the platform builds' images) ----
${MERGE_SHELL}

${mainShell(stepNames)}`;
  }

  /**
   * The buildspec as an object (version 0.2, bash, exported variables, the ECS artifact files).
   *
   * @param delivery how the script reaches the build host
   * @param environment variables for the buildspec's `env.variables` (the CLI puts its configuration there); the
   *   construct passes none and sets its configuration as project environment variables, where a token stays a value
   */
  public renderBuildSpecObject(delivery: ScriptDelivery = ScriptDelivery.INLINE, environment: Record<string, string> = {}): Record<string, unknown> {
    return this.buildSpecObject(this.phases.map(p => ({ name: p.name, steps: p.steps.map(s => s.name) })), delivery, environment);
  }

  /**
   * The buildspec of the native multi-platform path's merge project: the same script, its `merge` step only (registry requests:
   * no engine, no privileged mode), the same exported variables and artifact files, naming the index.
   */
  public renderMergeBuildSpecObject(
    delivery: ScriptDelivery = ScriptDelivery.INLINE, environment: Record<string, string> = {},
  ): Record<string, unknown> {
    return this.buildSpecObject([{ name: 'install', steps: [] }, { name: 'build', steps: ['merge'] }, { name: 'post_build', steps: [] }],
      delivery, environment);
  }

  private buildSpecObject(
    phaseSteps: readonly { readonly name: BuildPhase['name']; readonly steps: readonly string[] }[],
    delivery: ScriptDelivery, environment: Record<string, string>,
  ): Record<string, unknown> {
    const phases: Record<string, unknown> = {};
    for (const phase of phaseSteps) {
      const commands: string[] = [];
      if (phase.name === 'install') {
        commands.push(delivery === ScriptDelivery.INLINE
          ? `mkdir -p "$CIB_WORK_DIR" && cat > "$CIB_SCRIPT" <<'${HEREDOC_DELIMITER}'\n${this.renderScript()}${HEREDOC_DELIMITER}`
          : 'mkdir -p "$CIB_WORK_DIR" && aws s3 cp --only-show-errors "$CIB_SCRIPT_URL" "$CIB_SCRIPT"'
            + ` && printf '%s  %s\\n' "$CIB_SCRIPT_SHA256" "$CIB_SCRIPT" | sha256sum --check --quiet -`);
      }
      if (phase.steps.length > 0) commands.push(`bash "$CIB_SCRIPT" ${phase.steps.join(' ')}`);
      if (phase.name === 'post_build') {
        commands.push('. "$CIB_WORK_DIR/exports.env"');
      }
      phases[phase.name] = { 'on-failure': 'ABORT', 'commands': commands };
    }
    return {
      'version': '0.2',
      'env': {
        'shell': 'bash',
        'variables': {
          CIB_WORK_DIR: BUILDSPEC_WORK_DIR, CIB_SCRIPT: `${BUILDSPEC_WORK_DIR}/cached-build.sh`, CIB_ARTIFACTS_DIR: ARTIFACTS_DIR, ...environment,
        },
        'exported-variables': [...this.exportedVariables],
      },
      phases,
      'artifacts': { 'files': [...ARTIFACT_FILES], 'base-directory': ARTIFACTS_DIR },
    };
  }

  /** The merge project's buildspec as `buildspec.yml` text. */
  public renderMergeBuildSpecYaml(delivery: ScriptDelivery = ScriptDelivery.INLINE, environment: Record<string, string> = {}): string {
    return stringify(this.renderMergeBuildSpecObject(delivery, environment), { lineWidth: 0, blockQuote: 'literal' });
  }

  /** The buildspec as `buildspec.yml` text. */
  public renderBuildSpecYaml(delivery: ScriptDelivery = ScriptDelivery.INLINE, environment: Record<string, string> = {}): string {
    return stringify(this.renderBuildSpecObject(delivery, environment), { lineWidth: 0, blockQuote: 'literal' });
  }
}

/** Throws when a buildspec is longer than CodeBuild accepts inline. */
export function assertInlineBuildSpecFits(buildspec: string, where: string): void {
  if (buildspec.length > MAX_INLINE_BUILDSPEC_LENGTH) {
    throw new Error(`${where}: the buildspec is ${buildspec.length} characters; CodeBuild refuses an inline buildspec over `
      + `${MAX_INLINE_BUILDSPEC_LENGTH} ("Max buildspec length is 25600")`);
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
