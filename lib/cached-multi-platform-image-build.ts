import { Duration, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { Construct } from 'constructs';
import { assertInlineBuildSpecFits, BuildScript, ScriptDelivery } from './build-script/build-script';
import { MAX_TAG_LENGTH, PLATFORM, platformSlug } from './build-script/cache-refs';
import { CacheCleanup } from './cache-cleanup';
import { CacheStrategy, CacheStrategyKind } from './cache-strategy';
import {
  acknowledgeProjectNagFindings, CachedImageBuild, CachedImageBuildActionOptions, CachedImageBuildProps, PlatformMemberProps, writeScriptFile,
} from './cached-image-build';
import { CachedImageBuildGroup, invalidImageNameReason } from './cached-image-build-group';
import { ImageRepositories, PlatformRepositoriesProps } from './image-repositories';

/** One platform of a {@link CachedMultiPlatformImageBuild}, built natively by a CodeBuild project of its own. */
export interface NativePlatform {
  /** The platform, e.g. `linux/arm64`: `os/arch` or `os/arch/variant`. */
  readonly platform: string;

  /**
   * The CodeBuild image of this platform's project: a `LinuxArmBuildImage` for an ARM platform, a `LinuxBuildImage` for an
   * x86 one. Its Docker (or buildah 1.29+, for the buildah strategy) builds the platform natively.
   * @default - linux/amd64: the build's default (`LinuxBuildImage.STANDARD_7_0`, `STANDARD_8_0` with buildah); linux/arm64:
   * `LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0` (registry and inline strategies); required for any other platform,
   * and for linux/arm64 with the buildah strategy
   */
  readonly buildImage?: codebuild.IBuildImage;

  /** CodeBuild compute type of this platform's project. @default - the build's `computeType` */
  readonly computeType?: codebuild.ComputeType;
}

/** Properties of {@link CachedMultiPlatformImageBuild}: those of a {@link CachedImageBuild}, and the platforms. */
export interface CachedMultiPlatformImageBuildProps extends CachedImageBuildProps {
  /**
   * The platforms, two or more: each one's project builds it natively (`linux/amd64` on x86, `linux/arm64` on Graviton), pushes
   * `<tag>--<os>-<arch>` to the app repository and writes its own cache ref; a merge project then creates the index `<tag>`.
   * `platform` and `buildImage` are per platform here, and `source` is refused (the merge must run after every platform:
   * a pipeline stage orders them).
   */
  readonly platforms: NativePlatform[];
}

/**
 * A multi-platform image built natively: one {@link CachedImageBuild} project per platform (each on a build host of its own
 * architecture, with its own cache refs, named after the platform, so each platform's cache hits on every build), run as
 * parallel actions of one stage, then a merge action that writes the image index under the commit tag and hands it on
 * (imagedefinitions.json and imageDetail.json name the index; `IMAGE_DIGEST` is its digest).
 *
 * The platform builds share one cache repository, cleanup and dashboard (a {@link CachedImageBuildGroup}: the one given in
 * `group`, the platform images named `<imageName>.<os>-<arch>`, or one of its own, named `<os>-<arch>`).
 */
export class CachedMultiPlatformImageBuild extends Construct {
  /** Where the platform images and the index go. */
  public readonly appRepository: ecr.IRepository;
  /** Where every platform's cache refs go. */
  public readonly cacheRepository: ecr.IRepository;
  /** The build of each platform, in the order of `platforms`. */
  public readonly platformBuilds: CachedImageBuild[];
  /** The project that writes the index (registry requests only: no Docker, not privileged). */
  public readonly mergeProject: codebuild.PipelineProject;
  /** The group the platform builds belong to (the one given, or the build's own). */
  public readonly group: CachedImageBuildGroup;
  /** The cache cleanup of the group, unless disabled. */
  public readonly cleanup?: CacheCleanup;
  /** The group's dashboard, unless disabled. */
  public readonly dashboard?: cloudwatch.Dashboard;
  /** The platforms, in order. */
  public readonly platforms: string[];

  constructor(scope: Construct, id: string, props: CachedMultiPlatformImageBuildProps) {
    super(scope, id);
    const strategy = props.strategy ?? CacheStrategy.registry();
    this.platforms = this.validate(props, strategy);

    this.group = props.group ?? new CachedImageBuildGroup(this, 'Cache', {
      cacheRepository: props.cacheRepository,
      cacheRepositoryName: props.repositoryOptions?.cacheRepositoryName,
      encryptionKey: props.cacheRepository ? undefined : props.repositoryOptions?.encryptionKey ?? props.encryptionKey,
      removalPolicy: props.cacheRepository ? undefined : props.repositoryOptions?.removalPolicy,
      defaultBranch: props.defaultBranch,
      // A platform's build cannot hit another platform's records: reading them would only cost requests.
      crossImageCache: false,
      cleanup: props.cleanup,
      dashboard: props.dashboard,
    });
    const repositories: PlatformRepositoriesProps = {
      encryptionKey: props.encryptionKey,
      ...props.repositoryOptions,
      cacheRepositoryName: undefined,
      appRepository: props.appRepository,
      cacheRepository: this.group.cacheRepository,
      // The platform images are counted apart from the indexes (test/aws-contract.md ECR20).
      _platforms: this.platforms.length,
    };
    const repos = new ImageRepositories(this, 'Repositories', repositories);
    this.appRepository = repos.appRepository;
    this.cacheRepository = this.group.cacheRepository;

    this.platformBuilds = props.platforms.map(p => {
      const slug = platformSlug(p.platform);
      const member: PlatformMemberProps = {
        ...props,
        platforms: undefined,
        platform: p.platform,
        buildImage: p.buildImage ?? defaultBuildImage(p.platform, strategy),
        // LinuxArmBuildImage's own default is LARGE: the build's default, SMALL, unless said otherwise.
        computeType: p.computeType ?? props.computeType ?? codebuild.ComputeType.SMALL,
        appRepository: this.appRepository,
        cacheRepository: undefined,
        repositoryOptions: undefined,
        cleanup: undefined,
        dashboard: undefined,
        defaultBranch: props.group ? undefined : props.defaultBranch,
        group: this.group,
        imageName: props.imageName ? `${props.imageName}.${slug}` : slug,
        projectName: props.projectName ? `${props.projectName}-${slug}` : undefined,
        source: undefined,
        _platformTags: true,
        // Another platform's records can never hit: in a group that shares cache between images, not the other platforms'.
        _notCacheFrom: props.platforms.filter(o => o !== p).map(o => (props.imageName ? `${props.imageName}.` : '') + platformSlug(o.platform)),
      } as PlatformMemberProps;
      return new CachedImageBuild(this, slug, member);
    });
    this.cleanup = this.group.cleanup;
    this.dashboard = this.group.dashboard;

    // The merge runs the platforms' script (one asset: the same text), its merge step only.
    const mergeScript = new BuildScript({
      strategy: strategy._scriptStrategy,
      appRepositoryUri: this.appRepository.repositoryUri,
      mergePlatforms: this.platforms,
      containerName: props.containerName,
      reuseExistingImage: props.reuseExistingImage,
    });
    const script = new s3assets.Asset(this, 'Script', { path: writeScriptFile(mergeScript.renderScript()) });
    const buildSpecObject = mergeScript.renderMergeBuildSpecObject(ScriptDelivery.S3);
    assertInlineBuildSpecFits(codebuild.BuildSpec.fromObjectToYaml(buildSpecObject).toBuildSpec(), this.node.path);
    const env = mergeScript.environment(words => words.join(' '));
    this.mergeProject = new codebuild.PipelineProject(this, 'Merge', {
      projectName: props.projectName ? `${props.projectName}-merge` : undefined,
      description: `Merges the ${this.platforms.join(', ')} images into one index (cdk-cached-image-build)`,
      buildSpec: codebuild.BuildSpec.fromObjectToYaml(buildSpecObject),
      environment: { buildImage: codebuild.LinuxBuildImage.STANDARD_7_0, computeType: codebuild.ComputeType.SMALL, privileged: false },
      environmentVariables: {
        CIB_SCRIPT_URL: { value: script.s3ObjectUrl },
        CIB_SCRIPT_SHA256: { value: mergeScript.scriptSha256() },
        ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, { value: v }])),
      },
      vpc: props.vpc,
      subnetSelection: props.subnetSelection,
      timeout: Duration.minutes(15),
      logging: { cloudWatch: { logGroup: new logs.LogGroup(this, 'MergeLogs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH }) } },
      encryptionKey: props.encryptionKey,
    });
    // Reads each platform's manifest (BatchGetImage) and puts the index (PutImage); uploads no layer.
    acknowledgeProjectNagFindings(this.mergeProject, props.encryptionKey === undefined, 'ecr:GetAuthorizationToken has no resource-level '
      + 'permissions; every other ECR action is on the app repository');
    this.appRepository.grantPull(this.mergeProject);
    this.appRepository.grant(this.mergeProject, 'ecr:PutImage');
    this.mergeProject.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [script.bucket.arnForObjects(script.s3ObjectKey)],
    }));
  }

  /**
   * The stage's actions: one build action a platform (`<actionName>-<os>-<arch>`, parallel, at `runOrder`, each with the
   * variables namespace `<namespace>-<os>-<arch>` and an output of its own), then the merge action (`<actionName>`, at
   * `runOrder + 1`, namespace `<namespace>`), whose output artifact holds imagedefinitions.json and imageDetail.json naming
   * the index. `environmentVariables` (e.g. `IMAGE_TAG`) reach every action: the platform images and the index share the tag.
   */
  public actions(options: CachedImageBuildActionOptions): codepipeline.IAction[] {
    const namespace = options.variablesNamespace ?? 'Image';
    const actionName = options.actionName ?? 'BuildImage';
    const runOrder = options.runOrder ?? 1;
    if (!Token.isUnresolved(namespace) && !/^[A-Za-z0-9@_-]{1,100}$/.test(namespace)) {
      throw new Error(`${this.node.path}: variablesNamespace must be 1-100 of A-Za-z0-9@_-, got '${namespace}'`);
    }
    if (!Token.isUnresolved(actionName) && !/^[A-Za-z0-9.@_-]{1,100}$/.test(actionName)) {
      throw new Error(`${this.node.path}: actionName must be 1-100 of A-Za-z0-9.@_-, got '${actionName}'`);
    }
    const longest = Math.max(...this.platforms.map(p => platformSlug(p).length)) + 1;
    if (!Token.isUnresolved(namespace) && (namespace.length + longest > 100 || !/^[A-Za-z0-9_-]+$/.test(namespace))) {
      throw new Error(`${this.node.path}: variablesNamespace '${namespace}' names the platforms' namespaces (<namespace>-<os>-<arch>) and `
        + 'output artifacts: at most ' + (100 - longest) + ' of A-Za-z0-9_-');
    }
    if (!Token.isUnresolved(actionName) && actionName.length + longest > 100) {
      throw new Error(`${this.node.path}: actionName '${actionName}' names the platforms' actions (<actionName>-<os>-<arch>): at most ${100 - longest} characters`);
    }
    const platformActions = this.platformBuilds.map((build, i) => {
      const slug = platformSlug(this.platforms[i]);
      return build.action({
        input: options.input,
        output: new codepipeline.Artifact(`${namespace}_${slug.replace(/-/g, '_')}_Image`),
        actionName: `${actionName}-${slug}`,
        variablesNamespace: `${namespace}-${slug}`,
        runOrder,
        environmentVariables: options.environmentVariables,
      });
    });
    const merge = new actions.CodeBuildAction({
      actionName,
      input: options.input,
      outputs: [options.output ?? new codepipeline.Artifact(`${namespace}Image`)],
      project: this.mergeProject,
      variablesNamespace: namespace,
      runOrder: runOrder + 1,
      environmentVariables: options.environmentVariables,
    });
    return [...platformActions, merge];
  }

  private validate(props: CachedMultiPlatformImageBuildProps, strategy: CacheStrategy): string[] {
    const fail = (msg: string): never => {
      throw new Error(`${this.node.path}: ${msg}`);
    };
    const list = props.platforms ?? [];
    if (list.length < 2) fail(`platforms must name two or more platforms (one index of them), got ${list.length}`);
    const names = list.map(p => p.platform);
    for (const p of names) {
      if (Token.isUnresolved(p)) fail('platforms must be literals: each names a project and its cache refs');
      if (!PLATFORM.test(p)) fail(`platforms entries must look like linux/arm64 (os/arch or os/arch/variant), got '${p}'`);
    }
    const twice = names.find((p, i) => names.indexOf(p) !== i);
    if (twice) fail(`platforms names ${twice} twice`);
    for (const [name, value, why] of [
      ['platform', props.platform, 'the platforms are `platforms`'],
      ['buildImage', props.buildImage, 'each platform has its own (NativePlatform.buildImage)'],
      ['source', props.source, 'the merge must run after every platform\'s build: run them as a pipeline stage (actions())'],
      ['skipUnchangedBuilds', props.skipUnchangedBuilds, 'each platform\'s image is built (its tags follow the platform lifecycle rules)'],
    ] as const) {
      if (value !== undefined) fail(`${name} is not a property of a native multi-platform build: ${why}`);
    }
    if (props.group) {
      for (const [name, value] of [['cacheRepository', props.cacheRepository], ['cleanup', props.cleanup], ['dashboard', props.dashboard],
        ['repositoryOptions.cacheRepositoryName', props.repositoryOptions?.cacheRepositoryName]] as const) {
        if (value !== undefined) fail(`${name} is the group's (${props.group.node.path}): set it on the CachedImageBuildGroup`);
      }
      if (props.imageName === undefined) fail(`group ${props.group.node.path} needs an imageName (the platform images are <imageName>.<os>-<arch>)`);
      if (props.defaultBranch !== undefined && props.defaultBranch !== props.group.defaultBranch) {
        fail(`defaultBranch '${props.defaultBranch}' differs from group ${props.group.node.path}'s '${props.group.defaultBranch}'`);
      }
    } else if (props.imageName !== undefined) {
      fail(`imageName '${props.imageName}' names the image in a group: set group too, or leave it out`);
    }
    for (const p of list) {
      const imageName = props.imageName ? `${props.imageName}.${platformSlug(p.platform)}` : platformSlug(p.platform);
      const why = invalidImageNameReason(imageName);
      if (why) fail(`the ${p.platform} image's cache refs would be named '${imageName}', which ${why.replace(/^it /, '')}: use a shorter imageName`);
      const type = (p.buildImage ?? defaultBuildImage(p.platform, strategy))?.type;
      if (type === undefined) {
        fail(`platforms: ${p.platform} needs a buildImage (a CodeBuild image of that architecture)`
          + (p.platform === 'linux/arm64' ? ' with buildah 1.29 or later for the buildah strategy: no ARM CodeBuild image is known to have it' : ''));
      }
      const arm = /^linux\/arm/.test(p.platform);
      if (arm && type !== 'ARM_CONTAINER' && type !== 'ARM_EC2') {
        fail(`platforms: ${p.platform} is built natively, on an ARM host: its buildImage must be a LinuxArmBuildImage, got a ${type} image`);
      }
      if (!arm && (type === 'ARM_CONTAINER' || type === 'ARM_EC2')) {
        fail(`platforms: ${p.platform} is built natively: its buildImage must not be an ARM image (${type})`);
      }
    }
    if (props.repositoryOptions?.cacheUntaggedGracePeriod !== undefined) {
      fail('repositoryOptions.cacheUntaggedGracePeriod does not apply: the platforms\' cache repository is cleaned by the group\'s cleanup '
        + '(cleanup.untaggedGracePeriod)');
    }
    const keep = props.repositoryOptions?.keepTaggedImages;
    if (keep !== undefined && Token.isUnresolved(keep)) fail('repositoryOptions.keepTaggedImages must be a literal: the platform images\' rule counts from it');
    if (props.projectName !== undefined && !Token.isUnresolved(props.projectName)) {
      const longest = Math.max(...names.map(p => platformSlug(p).length), 'merge'.length);
      if (props.projectName.length + 1 + longest > 150) {
        fail(`projectName '${props.projectName}' is too long: its projects are <projectName>-<os>-<arch> and <projectName>-merge, at most 150 characters`);
      }
    }
    // The platform tag <tag>--<os>-<arch> leaves the tag itself at least 64 characters: a commit is 40.
    const longestSuffix = Math.max(...names.map(p => `--${platformSlug(p)}`.length));
    if (MAX_TAG_LENGTH - longestSuffix < 64) fail('a platform name is too long for its image tags');
    return names;
  }
}


/** The build image a platform gets by default, or undefined when it must be given. */
function defaultBuildImage(platform: string, strategy: CacheStrategy): codebuild.IBuildImage | undefined {
  if (platform === 'linux/amd64') {
    return strategy.kind === CacheStrategyKind.BUILDAH ? codebuild.LinuxBuildImage.STANDARD_8_0 : codebuild.LinuxBuildImage.STANDARD_7_0;
  }
  if (platform === 'linux/arm64' && strategy.kind !== CacheStrategyKind.BUILDAH) return codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0;
  return undefined;
}
