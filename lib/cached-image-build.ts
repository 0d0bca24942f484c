import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Annotations, CfnResource, Duration, Fn, Lazy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { assertInlineBuildSpecFits, BUILD_METRICS_NAMESPACE_PREFIX, buildMetricsNamespace, BuildScript, ScriptDelivery } from './build-script/build-script';
import { BUILD_ARG_NAME, MULTI_PLATFORM_STRATEGIES, SECRET_ID } from './build-script/config';
import { StrategyName } from './build-script/engine';
import { branchTag, invalidBranchReason } from './build-script/cache-refs';
import { CacheCleanup } from './cache-cleanup';
import { CacheCleanupOptions, validateCleanupOptions } from './cache-cleanup-options';
import {
  BuildMetric, CacheDashboardOptions, CacheHitAlarmOptions, CacheObservability, cacheBuildMetric, validateObservabilityOptions,
} from './cache-observability';
import { CacheStrategy, CacheStrategyKind } from './cache-strategy';
import { CachedImageBuildGroup, invalidImageNameReason } from './cached-image-build-group';
import { ImageRepositories, ImageRepositoryOptions } from './image-repositories';

/** Properties of {@link CachedImageBuild}. */
export interface CachedImageBuildProps {
  /** How the build reuses the remote layer cache. @default CacheStrategy.registry() */
  readonly strategy?: CacheStrategy;

  /** An existing repository for the app images. @default - created (see `repositoryOptions`) */
  readonly appRepository?: ecr.IRepository;

  /** An existing repository for the cache; its tags must be mutable. @default - created (see `repositoryOptions`) */
  readonly cacheRepository?: ecr.IRepository;

  /** Options for the repositories this construct creates. @default - see ImageRepositoryOptions */
  readonly repositoryOptions?: ImageRepositoryOptions;

  /** Build context, relative to the source root. @default '.' */
  readonly context?: string;

  /** Dockerfile, relative to the source root; must be inside the context. @default '<context>/Dockerfile' */
  readonly dockerfile?: string;

  /** `--build-arg` values (visible in the image history: never put secrets here). @default - none */
  readonly buildArgs?: { [name: string]: string };

  /**
   * Build secrets: id → Secrets Manager secret. The value reaches the engine as a private file
   * (`RUN --mount=type=secret,id=<id>`), never as an argument or a clear environment variable.
   * @default - none
   */
  readonly buildSecrets?: { [id: string]: secretsmanager.ISecret };

  /** Target stage. @default - the last stage */
  readonly target?: string;

  /**
   * Target platform, e.g. `linux/arm64`, or several, comma-separated, for one multi-platform image.
   *
   * Several (`linux/amd64,linux/arm64`) build one image index in one BuildKit build, with one cache export that holds every
   * platform, so each platform's cache hits on every build: `CacheStrategy.registry()` only. A platform other than the build
   * host's runs emulated, which needs QEMU registered with binfmt_misc on the build host.
   * @default - the build host's platform
   */
  readonly platform?: string;

  /** Branch whose cache every branch falls back to. @default 'main' */
  readonly defaultBranch?: string;

  /** Shell glob patterns of branches that read the cache but never write it (e.g. `pr-*`). @default - none */
  readonly readOnlyBranches?: string[];

  /** Whether builds write cache at all. @default true */
  readonly cacheWrite?: boolean;

  /** Container name in imagedefinitions.json (ECS standard deployments). @default 'app' */
  readonly containerName?: string;

  /**
   * Whether a build whose tag already exists in the app repository (a re-run of the same commit, "Release change")
   * reuses that image instead of building: ECR refuses a second push to an immutable tag, even of the same digest.
   * Turn it off only with a mutable app repository and a moving `IMAGE_TAG`.
   * @default true
   */
  readonly reuseExistingImage?: boolean;

  /**
   * Whether a build whose inputs are those of an image already in the app repository tags that image instead of building:
   * the Dockerfile, the build context (less what a `.dockerignore` line names literally), build args, target, platform and
   * the digests of the images the Dockerfile names (resolved in ECR; Docker Hub images count only when pinned by digest).
   * A fully cached build would make the same image: a step whose inputs did not change is not run again either. Each built
   * image gets a second tag, `cib-inputs-<digest of its inputs>`, the record a later build looks up.
   * Turn it off to rebuild on every commit anyway (e.g. a RUN that must see newer packages on every build). Not a property of
   * `CachedMultiPlatformImageBuild`, whose platform builds always build.
   * @default true
   */
  readonly skipUnchangedBuilds?: boolean;

  /**
   * CodeBuild image; must run Docker (privileged) for the docker strategies, and have (or install with apt-get/dnf)
   * buildah 1.29 or later for the buildah strategy.
   * @default LinuxBuildImage.STANDARD_7_0, or LinuxBuildImage.STANDARD_8_0 for the buildah strategy (Ubuntu 24.04, buildah 1.33)
   */
  readonly buildImage?: codebuild.IBuildImage;

  /** CodeBuild compute type. @default ComputeType.SMALL */
  readonly computeType?: codebuild.ComputeType;

  /** VPC to run the build in (it needs a route to ECR). @default - no VPC */
  readonly vpc?: ec2.IVpc;

  /** Subnets in `vpc`. @default - private subnets */
  readonly subnetSelection?: ec2.SubnetSelection;

  /** Build timeout, 5 minutes to 36 hours. @default Duration.hours(1) */
  readonly timeout?: Duration;

  /** Retention of the build logs. @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Customer managed key for the build's output artifacts (and the created repositories, unless
   * `repositoryOptions.encryptionKey` says otherwise).
   * @default - AWS managed keys
   */
  readonly encryptionKey?: kms.IKey;

  /** Name of the CodeBuild project. @default - generated */
  readonly projectName?: string;

  /** Source of the project when it runs outside CodePipeline (e.g. a GitHub webhook). @default - CodePipeline supplies it */
  readonly source?: codebuild.ISource;

  /** Cache repository cleanup. @default - enabled with its defaults */
  readonly cleanup?: CacheCleanupOptions;

  /**
   * Whether each build publishes its cache metrics (CacheHitRatio, StepsExecuted, StepsCached, CacheBytesPushed,
   * BuildSeconds; dimensions Project and Branch) in the project's own namespace, `CachedImageBuild/<project name>`, with one
   * `put-metric-data` call. The project role may then put metrics in that namespace only, so no build can publish another
   * project's metrics or the cleanup's. A failure to publish warns and never fails the build.
   * @default true
   */
  readonly metrics?: boolean;

  /**
   * The alarm on the default branch's cache hit ratio staying low over several builds (see CacheHitAlarmOptions).
   * @default - enabled with its defaults when `metrics` is on, no action
   */
  readonly cacheHitAlarm?: CacheHitAlarmOptions;

  /** The cache health dashboard: hit ratio, steps, duration, cache size, cleanup. @default - enabled with its defaults */
  readonly dashboard?: CacheDashboardOptions;

  /**
   * The group of images this one belongs to: it then writes to the group's cache repository (its refs named after
   * `imageName`), reads the other images' refs too, and is cleaned by the group's cleanup and shown on its dashboard. The group's
   * settings win: `cacheRepository`, `cleanup`, `dashboard` and a `defaultBranch` other than the group's are refused.
   * @default - none: the build has a cache repository, a cleanup and a dashboard of its own
   */
  readonly group?: CachedImageBuildGroup;

  /**
   * The image's name in its group: its cache refs in the shared repository are `<imageName>--<branch tag>`. 1-32 lower case
   * letters and digits with single `.`, `_` or `-` between them; unique in the group. Renaming it starts the image's cache afresh.
   * @default - none (required with `group`)
   */
  readonly imageName?: string;
}

/**
 * What a {@link CachedMultiPlatformImageBuild} passes to each platform's build, besides the public properties: that its image is
 * one platform of an index (tagged `<tag>--<os>-<arch>`). Not part of the public API.
 */
export interface PlatformMemberProps extends CachedImageBuildProps {
  readonly _platformTags?: boolean;
  /** Images of the group whose refs this build never reads (the other platforms of its index). */
  readonly _notCacheFrom?: string[];
}

/** Options of {@link CachedImageBuild.action}. */
export interface CachedImageBuildActionOptions {
  /** The source artifact. */
  readonly input: codepipeline.Artifact;
  /** Receives imagedefinitions.json and imageDetail.json. @default - a new artifact named '<namespace>Image' */
  readonly output?: codepipeline.Artifact;
  /** @default 'BuildImage' */
  readonly actionName?: string;
  /** Variables namespace: `#{<namespace>.IMAGE_URI}` and the other exported variables. @default 'Image' */
  readonly variablesNamespace?: string;
  /** @default 1 */
  readonly runOrder?: number;
  /** Extra environment variables for this action (e.g. `IMAGE_TAG`). @default - none */
  readonly environmentVariables?: { [name: string]: codebuild.BuildEnvironmentVariable };
}

const STAGE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?(,[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?)*$/;
const CONTAINER = /^[A-Za-z0-9_-]{1,255}$/;
/** CodeBuild project names (CreateProject): 2–150 characters (see test/aws-contract.md). */
const PROJECT_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{1,149}$/;
/** CodeBuild's timeoutInMinutes range (CreateProject): 5 minutes to 36 hours. */
const TIMEOUT_MINUTES = { min: 5, max: 2160 };
/** The CodeBuild standard images whose Ubuntu packages a buildah without --cache-from/--cache-to (before 1.27; we need 1.29). */
const OLD_BUILDAH_IMAGES = ['aws/codebuild/standard:5.0', 'aws/codebuild/standard:6.0', 'aws/codebuild/standard:7.0'];

/**
 * A CodeBuild project that builds a container image with a remote layer cache that works on every build,
 * the app and cache repositories it pushes to, and the pipeline action that hands the image on.
 */
export class CachedImageBuild extends Construct {
  /**
   * The cache repository tag that holds one branch's cache with the registry and inline strategies (the cleanup keeps
   * `branchCacheTag(defaultBranch)`): the branch name reduced to at most 128 of `[A-Za-z0-9_.-]`, with an 8-hex SHA-256
   * suffix whenever the name had to change, so that `feature/a` and `feature-a` stay apart.
   */
  public static branchCacheTag(branch: string): string {
    const why = invalidBranchReason(branch);
    if (why) throw new Error(`CachedImageBuild.branchCacheTag: '${branch}' is not a valid branch name: ${why}`);
    return branchTag(branch);
  }

  /** Where app images go. */
  public readonly appRepository: ecr.IRepository;
  /** Where cache refs go. */
  public readonly cacheRepository: ecr.IRepository;
  /** The CodeBuild project. */
  public readonly project: codebuild.Project;
  /**
   * The build's configuration as the environment variables the script reads (`APP_REPOSITORY_URI`, `CIB_DOCKERFILE`, ...;
   * what `cached-build env` prints): the project has them, and so must any other place that runs `renderScript()` or
   * `renderBuildSpec()`. Values may be tokens (the repository URIs are): pass them to a CDK construct, which resolves them.
   * Build secrets are not among them: the project reads each from Secrets Manager into `CIB_SECRET_<n>`.
   */
  public readonly scriptEnvironment: { [name: string]: string };
  /** The build model; its buildspec is the project's. @internal */
  public readonly _buildScript: BuildScript;
  /** The strategy in use. */
  public readonly strategy: CacheStrategy;
  /** The cache cleanup, unless disabled (in a group: the group's, shared by its images). */
  public readonly cleanup?: CacheCleanup;
  /** Fires when the default branch's cache hit ratio stays low over several builds, unless disabled (or metrics are off). */
  public readonly cacheHitAlarm?: cloudwatch.Alarm;
  /** The cache health dashboard, unless disabled (in a group: the group's, shared by its images). */
  public readonly dashboard?: cloudwatch.Dashboard;
  /** The image's name in its group, if it is in one. */
  public readonly imageName?: string;
  private readonly encryptionKey?: kms.IKey;
  private readonly defaultBranch: string;

  constructor(scope: Construct, id: string, props: CachedImageBuildProps = {}) {
    super(scope, id);
    this.strategy = props.strategy ?? CacheStrategy.registry();
    this.encryptionKey = props.encryptionKey;
    this.imageName = props.imageName;
    this.defaultBranch = props.defaultBranch ?? props.group?.defaultBranch ?? 'main';
    const metrics = props.metrics ?? true;
    const { context, dockerfile } = this.validate(props);
    const group = props.group;

    const repos = new ImageRepositories(this, 'Repositories', {
      encryptionKey: props.encryptionKey,
      ...props.repositoryOptions, appRepository: props.appRepository, cacheRepository: group?.cacheRepository ?? props.cacheRepository,
      // The cleanup deletes untagged cache manifests counting from when they lost their tag; ECR's rule would count from the push.
      expireUntaggedCache: props.cleanup?.enabled === false,
    });
    this.appRepository = repos.appRepository;
    this.cacheRepository = repos.cacheRepository;

    const secretEnv: Record<string, string> = {};
    const secretVariables: Record<string, codebuild.BuildEnvironmentVariable> = {};
    Object.entries(props.buildSecrets ?? {}).forEach(([secretId, secret], i) => {
      const name = `CIB_SECRET_${i}`;
      secretEnv[secretId] = name;
      secretVariables[name] = { type: codebuild.BuildEnvironmentVariableType.SECRETS_MANAGER, value: secret.secretArn };
    });

    this._buildScript = new BuildScript({
      strategy: this.strategy._scriptStrategy,
      appRepositoryUri: this.appRepository.repositoryUri,
      cacheRepositoryUri: this.cacheRepository.repositoryUri,
      dockerfile,
      context,
      defaultBranch: props.defaultBranch ?? group?.defaultBranch,
      readOnlyBranches: props.readOnlyBranches,
      cacheWrite: props.cacheWrite,
      buildArgs: props.buildArgs,
      buildSecretEnv: secretEnv,
      target: props.target,
      platform: props.platform,
      buildkitImage: this.strategy.kind === CacheStrategyKind.REGISTRY ? this.strategy.buildkitImage : undefined,
      cacheCompression: this.strategy.kind === CacheStrategyKind.REGISTRY ? this.strategy.cacheCompression : undefined,
      containerName: props.containerName,
      metrics,
      reuseExistingImage: props.reuseExistingImage,
      skipUnchangedBuilds: props.skipUnchangedBuilds,
      imageName: props.imageName,
      // Every image of the group, known once the app is complete: the same value for each (the script reads its own refs first).
      cacheFromImages: group?.crossImageCache
        ? Lazy.list({ produce: () => group.imageNames.filter(n => !((props as PlatformMemberProps)._notCacheFrom ?? []).includes(n)) }) : undefined,
      platformTags: (props as PlatformMemberProps)._platformTags,
    });

    // The script is the same for every project of a strategy; it reaches the build as an S3 asset, checked by its hash,
    // and the project's buildspec stays a page long (CodeBuild refuses an inline buildspec over 25,600 characters).
    const script = new s3assets.Asset(this, 'Script', { path: writeScriptFile(this._buildScript.renderScript()) });
    const buildSpecObject = this._buildScript.renderBuildSpecObject(ScriptDelivery.S3);
    assertInlineBuildSpecFits(codebuild.BuildSpec.fromObjectToYaml(buildSpecObject).toBuildSpec(), this.node.path);
    // Configuration reaches the script as project environment variables: a token stays a value, never script text.
    this.scriptEnvironment = this._buildScript.environment(joinWords);
    const environmentVariables: Record<string, codebuild.BuildEnvironmentVariable> = {
      CIB_SCRIPT_URL: { value: script.s3ObjectUrl },
      CIB_SCRIPT_SHA256: { value: this._buildScript.scriptSha256() },
      ...Object.fromEntries(Object.entries(this.scriptEnvironment).map(([k, v]) => [k, { value: v }])),
      ...secretVariables,
    };

    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    const common: codebuild.ProjectProps = {
      projectName: props.projectName,
      description: `Container image build with a ${this.strategy.kind} layer cache (cdk-cached-image-build)`,
      buildSpec: codebuild.BuildSpec.fromObjectToYaml(buildSpecObject),
      environment: {
        buildImage: props.buildImage ?? (this.strategy.kind === CacheStrategyKind.BUILDAH
          ? codebuild.LinuxBuildImage.STANDARD_8_0 : codebuild.LinuxBuildImage.STANDARD_7_0),
        computeType: props.computeType,
        privileged: true,
      },
      environmentVariables,
      vpc: props.vpc,
      subnetSelection: props.subnetSelection,
      timeout: props.timeout ?? Duration.hours(1),
      logging: { cloudWatch: { logGroup } },
      encryptionKey: props.encryptionKey,
    };
    this.project = props.source
      ? new codebuild.Project(this, 'Project', { ...common, source: props.source })
      : new codebuild.PipelineProject(this, 'Project', common);

    this.appRepository.grantPullPush(this.project);
    this.cacheRepository.grantPullPush(this.project);
    // The one object the build reads, not the whole asset bucket.
    this.project.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [script.bucket.arnForObjects(script.s3ObjectKey)],
    }));
    // CodeBuild's own grant for SECRETS_MANAGER variables covers GetSecretValue on each secret; a customer managed key
    // needs decrypt too. (Granting GetSecretValue again per secret would double the role policy: IAM caps it at 10,240.)
    for (const secret of Object.values(props.buildSecrets ?? {})) secret.encryptionKey?.grantDecrypt(this.project);
    if (metrics) {
      // PutMetricData has no resource-level permissions: the namespace condition is the only scope there is (no condition key
      // covers dimensions), so each project publishes in a namespace of its own, which only its role may write.
      this.project.addToRolePolicy(new iam.PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': buildMetricsNamespace(this.project.projectName) } },
      }));
    }
    if (!group && props.cleanup?.enabled !== false) {
      this.cleanup = new CacheCleanup(this, 'Cleanup', {
        ...props.cleanup, cacheRepository: this.cacheRepository, project: this.project, defaultBranch: this.defaultBranch,
      });
    }
    const observability = new CacheObservability(this, 'Observability', {
      project: this.project, defaultBranch: this.defaultBranch, metrics, cleanup: this.cleanup,
      cacheHitAlarm: props.cacheHitAlarm, dashboard: group ? { enabled: false } : props.dashboard,
    });
    this.cacheHitAlarm = observability.cacheHitAlarm;
    if (group) {
      // One cleanup and one dashboard for the group: the cleanup reads this project's history too.
      this.cleanup = group._register(this, props.imageName!, observability);
      this.dashboard = group.dashboard;
    } else {
      this.dashboard = observability.dashboard;
    }
    this.acknowledgeNagFindings();
  }

  /**
   * The standalone bash script the project runs (the same for every project of a strategy: its configuration comes from
   * `scriptEnvironment`). `bash cached-build.sh` runs every step; `cached-build script --strategy <s>` prints the same text.
   */
  public renderScript(): string {
    return this._buildScript.renderScript();
  }

  /**
   * A self-contained `buildspec.yml` for this strategy: the script as a here-document instead of the project's S3 download,
   * for a CodeBuild project defined elsewhere. The configuration is not in it (no token ever becomes text): give that project
   * `scriptEnvironment` as its environment variables. Longer than the 25,600 characters CodeBuild accepts inline: commit it
   * to the source, or use `BuildSpec.fromSourceFilename`.
   */
  public renderBuildSpec(): string {
    return this._buildScript.renderBuildSpecYaml(ScriptDelivery.INLINE);
  }

  /** The cdk-nag (AwsSolutions) findings that this construct cannot avoid, with the reason for each. */
  private acknowledgeNagFindings(): void {
    acknowledgeProjectNagFindings(this.project, !this.encryptionKey, 'ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no '
      + `resource-level permissions; PutMetricData is limited to the project's own ${BUILD_METRICS_NAMESPACE_PREFIX}<project> namespace by a `
      + 'cloudwatch:namespace condition, every other ECR action to the two repositories');
  }

  /** The cache hit ratio (cached steps / all steps, 0..1) of one branch's builds. @default - the default branch, Average over 5 minutes */
  public metricCacheHitRatio(branch?: string, options?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.buildMetric(BuildMetric.CACHE_HIT_RATIO, branch, options);
  }

  /** Dockerfile steps one branch's builds executed. @default - the default branch, Average over 5 minutes */
  public metricStepsExecuted(branch?: string, options?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.buildMetric(BuildMetric.STEPS_EXECUTED, branch, options);
  }

  /** Dockerfile steps one branch's builds took from the cache. @default - the default branch, Average over 5 minutes */
  public metricStepsCached(branch?: string, options?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.buildMetric(BuildMetric.STEPS_CACHED, branch, options);
  }

  /** Bytes one branch's cache exports pushed (0 when nothing was written). @default - the default branch, Average over 5 minutes */
  public metricCacheBytesPushed(branch?: string, options?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.buildMetric(BuildMetric.CACHE_BYTES_PUSHED, branch, options);
  }

  /** Wall time, in seconds, of one branch's build scripts. @default - the default branch, Average over 5 minutes */
  public metricBuildSeconds(branch?: string, options?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.buildMetric(BuildMetric.BUILD_SECONDS, branch, options);
  }

  private buildMetric(metricName: string, branch: string | undefined, options: cloudwatch.MetricOptions | undefined): cloudwatch.Metric {
    if (branch !== undefined && !Token.isUnresolved(branch) && invalidBranchReason(branch)) {
      throw new Error(`${this.node.path}: branch '${branch}' is not a valid branch name: ${invalidBranchReason(branch)}`);
    }
    const dimension = branch !== undefined && !Token.isUnresolved(branch) ? dimensionValueProblem(branch) : undefined;
    if (dimension) throw new Error(`${this.node.path}: branch ${dimension}`);
    return cacheBuildMetric(this.project.projectName, branch ?? this.defaultBranch, metricName, options);
  }

  /**
   * A CodePipeline action that runs the build. Its output artifact holds imagedefinitions.json and
   * imageDetail.json; its variables namespace exposes IMAGE_URI, IMAGE_TAG, IMAGE_DIGEST, CACHE_HIT_RATIO
   * and the other exported variables (`action.variable('IMAGE_URI')`).
   */
  public action(options: CachedImageBuildActionOptions): actions.CodeBuildAction {
    const namespace = options.variablesNamespace ?? 'Image';
    if (!Token.isUnresolved(namespace) && !/^[A-Za-z0-9@_-]{1,100}$/.test(namespace)) {
      throw new Error(`${this.node.path}: variablesNamespace must be 1-100 of A-Za-z0-9@_-, got '${namespace}'`);
    }
    return new actions.CodeBuildAction({
      actionName: options.actionName ?? 'BuildImage',
      input: options.input,
      outputs: [options.output ?? new codepipeline.Artifact(`${namespace}Image`)],
      project: this.project,
      variablesNamespace: namespace,
      runOrder: options.runOrder,
      environmentVariables: options.environmentVariables,
    });
  }

  /** Read-only globs that silently stop every cache write, or the default branch's: legal, and almost surely a mistake. */
  private warnReadOnlyBranches(globs: readonly string[]): void {
    for (const glob of globs) {
      if (Token.isUnresolved(glob)) continue;
      const re = shellGlobRegExp(glob);
      if (re.test('') && re.test('any/branch-name.1')) {
        Annotations.of(this).addWarningV2('cdk-cached-image-build:readOnlyEveryBranch', `readOnlyBranches '${glob}' matches every branch: `
          + 'no build will ever write cache (to say so, set cacheWrite: false instead)');
      } else if (!Token.isUnresolved(this.defaultBranch) && re.test(this.defaultBranch)) {
        Annotations.of(this).addWarningV2('cdk-cached-image-build:readOnlyDefaultBranch', `readOnlyBranches '${glob}' matches the default `
          + `branch '${this.defaultBranch}': it will never write cache, and every branch falls back to the default branch's cache`);
      }
    }
  }

  private validate(props: CachedImageBuildProps): { context: string; dockerfile: string } {
    const fail = (msg: string): never => {
      throw new Error(`${this.node.path}: ${msg}`);
    };
    const rel = (name: string, v: string): string => {
      if (Token.isUnresolved(v)) fail(`${name} must be a literal path, got a token`);
      if (v.length === 0) fail(`${name} must not be empty`);
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u001f\u007f]/.test(v)) fail(`${name} must be one line without control characters, got ${JSON.stringify(v)}`);
      if (path.posix.isAbsolute(v)) fail(`${name} must be relative to the source root, got '${v}'`);
      const n = path.posix.normalize(v);
      if (n === '..' || n.startsWith('../')) fail(`${name} must stay inside the source root, got '${v}'`);
      if (n.startsWith('-')) fail(`${name} '${v}' starts with '-', which an engine reads as an option: rename it`);
      return n;
    };
    const context = rel('context', props.context ?? '.');
    const dockerfile = rel('dockerfile', props.dockerfile ?? path.posix.join(context, 'Dockerfile'));
    if (dockerfile === '.' || dockerfile === context || (props.dockerfile ?? '').endsWith('/')) {
      fail(`dockerfile must name a file, got '${props.dockerfile}' (e.g. '${path.posix.join(context, 'Dockerfile')}')`);
    }
    if (context !== '.' && !dockerfile.startsWith(`${context}/`)) {
      fail(`dockerfile '${props.dockerfile}' is outside the context '${props.context}': paths are relative to the source root`);
    }
    const branch = props.defaultBranch;
    if (branch !== undefined && !Token.isUnresolved(branch)) {
      const why = invalidBranchReason(branch);
      if (why) fail(`defaultBranch '${branch}' is not a valid branch name: ${why}`);
      const dimension = dimensionValueProblem(branch);
      if ((props.metrics ?? true) && dimension) fail(`defaultBranch ${dimension}`);
    }
    for (const p of props.readOnlyBranches ?? []) {
      if (!Token.isUnresolved(p) && (p.length === 0 || /\s/.test(p))) fail(`readOnlyBranches entries must be non-empty globs without spaces, got '${p}'`);
    }
    this.warnReadOnlyBranches(props.readOnlyBranches ?? []);
    if (props.cacheWrite === false && (props.readOnlyBranches ?? []).length > 0) {
      fail('readOnlyBranches has no effect when cacheWrite is false: remove one of them');
    }
    for (const k of Object.keys(props.buildArgs ?? {})) {
      if (!BUILD_ARG_NAME.test(k)) fail(`buildArgs key '${k}' is not a valid variable name`);
    }
    for (const k of Object.keys(props.buildSecrets ?? {})) {
      if (!SECRET_ID.test(k)) fail(`buildSecrets id '${k}' must be 1-64 of [A-Za-z0-9_.-]`);
      if (props.buildArgs && k in props.buildArgs) fail(`'${k}' is both a build arg and a build secret: a secret must never be an arg`);
    }
    if (props.target !== undefined && !Token.isUnresolved(props.target) && !STAGE.test(props.target)) {
      fail(`target must be a stage name, got '${props.target}'`);
    }
    if (props.platform !== undefined && !Token.isUnresolved(props.platform) && !PLATFORM.test(props.platform)) {
      fail(`platform must look like linux/amd64 (comma-separated for several), got '${props.platform}'`);
    }
    const platforms = props.platform !== undefined && !Token.isUnresolved(props.platform) ? props.platform.split(',') : [];
    const twice = platforms.find((p, i) => platforms.indexOf(p) !== i);
    if (twice) fail(`platform '${props.platform}' names ${twice} twice`);
    if (props.platform !== undefined && !Token.isUnresolved(props.platform) && props.platform.includes(',')
      && !MULTI_PLATFORM_STRATEGIES.includes(this.strategy.kind as string as StrategyName)) {
      fail(`platform '${props.platform}' names several platforms: only CacheStrategy.registry() builds a multi-platform image `
        + `(one BuildKit build, one cache export holding every platform); the ${this.strategy.kind} strategy builds one platform`);
    }
    if (props.containerName !== undefined && !Token.isUnresolved(props.containerName) && !CONTAINER.test(props.containerName)) {
      fail(`containerName must be 1-255 of [A-Za-z0-9_-], got '${props.containerName}'`);
    }
    const t = props.timeout;
    if (t && !t.isUnresolved()) {
      const minutes = t.toMinutes({ integral: false });
      if (minutes < TIMEOUT_MINUTES.min || minutes > TIMEOUT_MINUTES.max || !Number.isInteger(minutes)) {
        fail(`timeout must be a whole number of minutes from 5 minutes to 36 hours, got ${t.toHumanString()}`);
      }
    }
    if (props.projectName !== undefined && !Token.isUnresolved(props.projectName) && !PROJECT_NAME.test(props.projectName)) {
      fail(`projectName must be 2-150 of [A-Za-z0-9_-] starting with a letter or digit, got '${props.projectName}'`);
    }
    const image = props.buildImage?.imageId;
    if (this.strategy.kind === CacheStrategyKind.BUILDAH && image !== undefined && OLD_BUILDAH_IMAGES.includes(image)) {
      fail(`buildImage ${image} is Ubuntu 22.04 or older, whose buildah (1.23 on 22.04) has no --cache-from/--cache-to `
        + '(they came in 1.27, and the buildah strategy needs 1.29 or later): use LinuxBuildImage.STANDARD_8_0 (the default for the buildah strategy)');
    }
    if (props.subnetSelection && !props.vpc) fail('subnetSelection needs vpc');
    if (props.appRepository && props.repositoryOptions?.appRepositoryName !== undefined) {
      fail(`repositoryOptions.appRepositoryName '${props.repositoryOptions.appRepositoryName}' conflicts with appRepository`);
    }
    if (props.cacheRepository && props.repositoryOptions?.cacheRepositoryName !== undefined) {
      fail(`repositoryOptions.cacheRepositoryName '${props.repositoryOptions.cacheRepositoryName}' conflicts with cacheRepository`);
    }
    validateCleanupOptions(this.node.path, props.cleanup ?? {});
    validateObservabilityOptions(this.node.path, props.metrics ?? true, props.cacheHitAlarm ?? {}, props.dashboard ?? {});
    this.validateGroup(props);
    return { context, dockerfile };
  }

  private validateGroup(props: CachedImageBuildProps): void {
    const fail = (msg: string): never => {
      throw new Error(`${this.node.path}: ${msg}`);
    };
    const { group, imageName } = props;
    if (imageName !== undefined) {
      if (Token.isUnresolved(imageName)) fail('imageName must be a literal: it names the image\'s cache refs');
      const why = invalidImageNameReason(imageName);
      if (why) fail(`imageName '${imageName}' is not an image name: ${why}`);
    }
    if (!group) {
      if (imageName !== undefined) {
        fail(`imageName '${imageName}' names an image in a group's shared cache repository: set group too (a CachedImageBuildGroup)`);
      }
      return;
    }
    if (imageName === undefined) fail(`group ${group.node.path} needs an imageName for this image (it names its cache refs)`);
    const owned: [string, unknown][] = [
      ['cacheRepository', props.cacheRepository], ['repositoryOptions.cacheRepositoryName', props.repositoryOptions?.cacheRepositoryName],
      ['repositoryOptions.cacheUntaggedGracePeriod', props.repositoryOptions?.cacheUntaggedGracePeriod],
      ['cleanup', props.cleanup], ['dashboard', props.dashboard],
    ];
    for (const [name, value] of owned) {
      if (value !== undefined) fail(`${name} is the group's (${group.node.path}): set it on the CachedImageBuildGroup, not on one image`);
    }
    if (props.defaultBranch !== undefined && props.defaultBranch !== group.defaultBranch) {
      fail(`defaultBranch '${props.defaultBranch}' differs from group ${group.node.path}'s '${group.defaultBranch}': the images of a group `
        + 'read each other\'s default branch cache, so they share one');
    }
    group._checkMember(this, imageName!);
  }
}

/**
 * Acknowledges the cdk-nag (AwsSolutions) findings a build project cannot avoid, with the reason for each: `wildcardReason` says
 * why its role has `Resource::*` statements. @internal
 */
export function acknowledgeProjectNagFindings(project: codebuild.Project, awsManagedKey: boolean, wildcardReason: string): void {
  const role = project.role;
  if (!role) return;
  if (awsManagedKey) {
    Validations.of(project).acknowledge({
      id: 'AwsSolutions-CB4',
      reason: 'Build artifacts (two small JSON files naming the image) use the AWS managed key; pass encryptionKey for a customer managed key',
    });
  }
  Validations.of(role).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason: wildcardReason });
  // cdk-nag names a finding by the resolved resource: literals where the stack's environment is known.
  const stack = Stack.of(project);
  const lit = (v: string, pseudo: string) => (Token.isUnresolved(v) ? `<AWS::${pseudo}>` : v);
  const arn = (service: string, rest: string) =>
    `arn:${lit(stack.partition, 'Partition')}:${service}:${lit(stack.region, 'Region')}:${lit(stack.account, 'AccountId')}:${rest}`;
  const id = stack.getLogicalId(project.node.defaultChild as CfnResource);
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${arn('logs', `log-group:/aws/codebuild/<${id}>:*`)}]`,
    reason: 'CodeBuild\'s default grant for its own log streams, scoped to this project\'s log group name',
  });
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${arn('codebuild', `report-group/<${id}>-*`)}]`,
    reason: 'CodeBuild\'s default grant for report groups, scoped to the groups named after this project',
  });
}

/**
 * What is wrong with `value` as a CloudWatch dimension value for an alarm, or undefined: AWS::CloudWatch::Alarm takes 1–255
 * characters, and CloudWatch takes ASCII only (see test/aws-contract.md CW4).
 */
function dimensionValueProblem(value: string): string | undefined {
  if (value.length > 255) return `is ${value.length} characters; as the Branch dimension of the build metrics' alarm it may have at most 255`;
  // eslint-disable-next-line no-control-regex
  if (/[^\u0000-\u007f]/.test(value)) return `'${value}' is not ASCII; CloudWatch dimension values (the Branch of the build metrics) must be`;
  return undefined;
}

/** A bash `[[ x == glob ]]` pattern (the script's read-only test) as a regular expression: `*`, `?` and `[...]` classes. */
function shellGlobRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') out += '[\\s\\S]*';
    else if (c === '?') out += '[\\s\\S]';
    else if (c === '[' && glob.indexOf(']', i + 2) > 0) {
      const end = glob.indexOf(']', i + 2);
      let body = glob.slice(i + 1, end);
      if (body.startsWith('!') || body.startsWith('^')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < glob.length) {
      out += glob[++i].replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else {
      out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  try {
    return new RegExp(`^${out}$`);
  } catch {
    return /$^/; // a class bash would read differently (e.g. [z-a]): no warning rather than a wrong one
  }
}

/** A list as one space-separated value; a token list stays a token (`Fn::Join`). */
function joinWords(values: readonly string[]): string {
  return Token.isUnresolved(values) ? Fn.join(' ', values as string[]) : values.join(' ');
}

/**
 * Writes the script where an asset can read it: a directory named by its hash under the system temp dir, so that
 * repeated synths reuse one file and different scripts never share one.
 */
export function writeScriptFile(text: string): string {
  const dir = path.join(os.tmpdir(), 'cdk-cached-image-build', createHash('sha256').update(text).digest('hex'));
  const file = path.join(dir, 'cached-build.sh');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, text, { mode: 0o644 });
    fs.renameSync(tmp, file);
  }
  return file;
}
