import * as path from 'path';
import { CfnResource, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { DEFAULT_METRICS_NAMESPACE } from '../lambda/cache-cleanup/contract';
import { BuildScript } from './build-script/build-script';
import { invalidBranchReason } from './build-script/cache-refs';
import { CacheCleanup } from './cache-cleanup';
import { CacheCleanupOptions, validateCleanupOptions } from './cache-cleanup-options';
import {
  BuildMetric, CacheDashboardOptions, CacheHitAlarmOptions, CacheObservability, cacheBuildMetric, validateObservabilityOptions,
} from './cache-observability';
import { CacheStrategy, CacheStrategyKind } from './cache-strategy';
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

  /** Target platform, e.g. `linux/arm64`. @default - the build host's platform */
  readonly platform?: string;

  /** Branch whose cache every branch falls back to. @default 'main' */
  readonly defaultBranch?: string;

  /** Shell glob patterns of branches that read the cache but never write it (e.g. `pr-*`). @default - none */
  readonly readOnlyBranches?: string[];

  /** Whether builds write cache at all. @default true */
  readonly cacheWrite?: boolean;

  /** Container name in imagedefinitions.json (ECS standard deployments). @default 'app' */
  readonly containerName?: string;

  /** CodeBuild image; must run Docker (privileged) for the docker strategies. @default LinuxBuildImage.STANDARD_7_0 */
  readonly buildImage?: codebuild.IBuildImage;

  /** CodeBuild compute type. @default ComputeType.SMALL */
  readonly computeType?: codebuild.ComputeType;

  /** VPC to run the build in (it needs a route to ECR). @default - no VPC */
  readonly vpc?: ec2.IVpc;

  /** Subnets in `vpc`. @default - private subnets */
  readonly subnetSelection?: ec2.SubnetSelection;

  /** Build timeout, 5 minutes to 8 hours. @default Duration.hours(1) */
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
   * BuildSeconds; dimensions Project and Branch) in the `CachedImageBuild` namespace, with one `put-metric-data` call.
   * The project role may then put metrics in that namespace only. A failure to publish warns and never fails the build.
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
const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const CONTAINER = /^[A-Za-z0-9_-]{1,255}$/;

/**
 * A CodeBuild project that builds a container image with a remote layer cache that works on every build,
 * the app and cache repositories it pushes to, and the pipeline action that hands the image on.
 */
export class CachedImageBuild extends Construct {
  /** Where app images go. */
  public readonly appRepository: ecr.IRepository;
  /** Where cache refs go. */
  public readonly cacheRepository: ecr.IRepository;
  /** The CodeBuild project. */
  public readonly project: codebuild.Project;
  /** The build model; its buildspec is the project's. */
  public readonly buildScript: BuildScript;
  /** The strategy in use. */
  public readonly strategy: CacheStrategy;
  /** The cache cleanup, unless disabled. */
  public readonly cleanup?: CacheCleanup;
  /** Fires when the default branch's cache hit ratio stays low over several builds, unless disabled (or metrics are off). */
  public readonly cacheHitAlarm?: cloudwatch.Alarm;
  /** The cache health dashboard, unless disabled. */
  public readonly dashboard?: cloudwatch.Dashboard;
  private readonly encryptionKey?: kms.IKey;
  private readonly defaultBranch: string;

  constructor(scope: Construct, id: string, props: CachedImageBuildProps = {}) {
    super(scope, id);
    this.strategy = props.strategy ?? CacheStrategy.registry();
    this.encryptionKey = props.encryptionKey;
    this.defaultBranch = props.defaultBranch ?? 'main';
    const metrics = props.metrics ?? true;
    const { context, dockerfile } = this.validate(props);

    const repos = new ImageRepositories(this, 'Repositories', {
      encryptionKey: props.encryptionKey,
      ...props.repositoryOptions, appRepository: props.appRepository, cacheRepository: props.cacheRepository,
    });
    this.appRepository = repos.appRepository;
    this.cacheRepository = repos.cacheRepository;

    const secretEnv: Record<string, string> = {};
    const environmentVariables: Record<string, codebuild.BuildEnvironmentVariable> = {
      APP_REPOSITORY_URI: { value: this.appRepository.repositoryUri },
      CACHE_REPOSITORY_URI: { value: this.cacheRepository.repositoryUri },
    };
    Object.entries(props.buildSecrets ?? {}).forEach(([secretId, secret], i) => {
      const name = `CIB_SECRET_${i}`;
      secretEnv[secretId] = name;
      environmentVariables[name] = { type: codebuild.BuildEnvironmentVariableType.SECRETS_MANAGER, value: secret.secretArn };
    });

    this.buildScript = new BuildScript({
      strategy: this.strategy._scriptStrategy,
      dockerfile,
      context,
      defaultBranch: props.defaultBranch,
      readOnlyBranches: props.readOnlyBranches,
      cacheWrite: props.cacheWrite,
      buildArgs: props.buildArgs,
      buildSecretEnv: secretEnv,
      target: props.target,
      platform: props.platform,
      buildkitImage: this.strategy.kind === CacheStrategyKind.REGISTRY ? this.strategy.buildkitImage : undefined,
      containerName: props.containerName,
      metrics,
    });

    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    const common: codebuild.ProjectProps = {
      projectName: props.projectName,
      description: `Container image build with a ${this.strategy.kind} layer cache (cdk-cached-image-build)`,
      buildSpec: codebuild.BuildSpec.fromObjectToYaml(this.buildScript.renderBuildSpecObject()),
      environment: {
        buildImage: props.buildImage ?? codebuild.LinuxBuildImage.STANDARD_7_0,
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
    for (const secret of Object.values(props.buildSecrets ?? {})) secret.grantRead(this.project);
    if (metrics) {
      // PutMetricData has no resource-level permissions: the namespace condition is the scope.
      this.project.addToRolePolicy(new iam.PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': DEFAULT_METRICS_NAMESPACE } },
      }));
    }
    if (props.cleanup?.enabled !== false) {
      this.cleanup = new CacheCleanup(this, 'Cleanup', {
        ...props.cleanup, cacheRepository: this.cacheRepository, project: this.project, defaultBranch: this.defaultBranch,
      });
    }
    const observability = new CacheObservability(this, 'Observability', {
      project: this.project, defaultBranch: this.defaultBranch, metrics, cleanup: this.cleanup,
      cacheHitAlarm: props.cacheHitAlarm, dashboard: props.dashboard,
    });
    this.cacheHitAlarm = observability.cacheHitAlarm;
    this.dashboard = observability.dashboard;
    this.acknowledgeNagFindings();
  }

  /** The cdk-nag (AwsSolutions) findings that this construct cannot avoid, with the reason for each. */
  private acknowledgeNagFindings(): void {
    const role = this.project.role;
    if (!role) return;
    if (!this.encryptionKey) {
      Validations.of(this.project).acknowledge({
        id: 'AwsSolutions-CB4',
        reason: 'Build artifacts (two small JSON files naming the image) use the AWS managed key; pass encryptionKey for a customer managed key',
      });
    }
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; PutMetricData is limited '
        + `to the ${DEFAULT_METRICS_NAMESPACE} namespace by a cloudwatch:namespace condition, every other ECR action to the two repositories`,
    });
    // cdk-nag names a finding by the resolved resource: literals where the stack's environment is known.
    const stack = Stack.of(this);
    const lit = (v: string, pseudo: string) => (Token.isUnresolved(v) ? `<AWS::${pseudo}>` : v);
    const arn = (service: string, rest: string) =>
      `arn:${lit(stack.partition, 'Partition')}:${service}:${lit(stack.region, 'Region')}:${lit(stack.account, 'AccountId')}:${rest}`;
    const project = stack.getLogicalId(this.project.node.defaultChild as CfnResource);
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${arn('logs', `log-group:/aws/codebuild/<${project}>:*`)}]`,
      reason: 'CodeBuild\'s default grant for its own log streams, scoped to this project\'s log group name',
    });
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${arn('codebuild', `report-group/<${project}>-*`)}]`,
      reason: 'CodeBuild\'s default grant for report groups, scoped to the groups named after this project',
    });
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

  private validate(props: CachedImageBuildProps): { context: string; dockerfile: string } {
    const fail = (msg: string): never => {
      throw new Error(`${this.node.path}: ${msg}`);
    };
    const rel = (name: string, v: string): string => {
      if (Token.isUnresolved(v)) fail(`${name} must be a literal path, got a token`);
      if (v.length === 0) fail(`${name} must not be empty`);
      if (path.posix.isAbsolute(v)) fail(`${name} must be relative to the source root, got '${v}'`);
      const n = path.posix.normalize(v);
      if (n === '..' || n.startsWith('../')) fail(`${name} must stay inside the source root, got '${v}'`);
      return n;
    };
    const context = rel('context', props.context ?? '.');
    const dockerfile = rel('dockerfile', props.dockerfile ?? path.posix.join(context, 'Dockerfile'));
    if (context !== '.' && !dockerfile.startsWith(`${context}/`)) {
      fail(`dockerfile '${props.dockerfile}' is outside the context '${props.context}': paths are relative to the source root`);
    }
    const branch = props.defaultBranch;
    if (branch !== undefined && !Token.isUnresolved(branch)) {
      const why = invalidBranchReason(branch);
      if (why) fail(`defaultBranch '${branch}' is not a valid branch name: ${why}`);
    }
    for (const p of props.readOnlyBranches ?? []) {
      if (!Token.isUnresolved(p) && (p.length === 0 || /\s/.test(p))) fail(`readOnlyBranches entries must be non-empty globs without spaces, got '${p}'`);
    }
    if (props.cacheWrite === false && (props.readOnlyBranches ?? []).length > 0) {
      fail('readOnlyBranches has no effect when cacheWrite is false: remove one of them');
    }
    for (const k of Object.keys(props.buildArgs ?? {})) {
      if (!VARIABLE.test(k)) fail(`buildArgs key '${k}' is not a valid variable name`);
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
    if (props.containerName !== undefined && !Token.isUnresolved(props.containerName) && !CONTAINER.test(props.containerName)) {
      fail(`containerName must be 1-255 of [A-Za-z0-9_-], got '${props.containerName}'`);
    }
    const t = props.timeout;
    if (t && !t.isUnresolved() && (t.toMinutes({ integral: false }) < 5 || t.toMinutes({ integral: false }) > 480)) {
      fail(`timeout must be between 5 minutes and 8 hours, got ${t.toHumanString()}`);
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
    return { context, dockerfile };
  }
}
