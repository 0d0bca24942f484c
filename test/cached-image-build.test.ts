import { createHash } from 'crypto';
import { App, CfnParameter, CfnWaitConditionHandle, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { parse } from 'yaml';
import { CachedImageBuild, CachedImageBuildProps, CacheCompression, CacheStrategy } from '../lib';
import { EXPORTED_VARIABLES, ScriptDelivery } from '../lib/build-script/build-script';
import { projectStatements, Statement, synth } from './synth';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe('created repositories', () => {
  test('app repository: scan on push, AES256, immutable tags, lifecycle rules', () => {
    const { t } = synth();
    t.hasResourceProperties('AWS::ECR::Repository', {
      ImageScanningConfiguration: { ScanOnPush: true },
      // No EncryptionConfiguration: ECR's default, AES256.
      EncryptionConfiguration: Match.absent(),
      ImageTagMutability: 'IMMUTABLE',
      LifecyclePolicy: { LifecyclePolicyText: Match.serializedJson(Match.objectLike({
        rules: [
          Match.objectLike({ rulePriority: 1, selection: Match.objectLike({ tagStatus: 'untagged', countType: 'sinceImagePushed', countNumber: 1 }) }),
          Match.objectLike({ rulePriority: 2, selection: Match.objectLike({ tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 200 }) }),
        ],
      })) },
    });
  });

  test('cache repository: mutable; without the cleanup, ECR expires untagged manifests after the grace period', () => {
    const { t } = synth({ repositoryOptions: { cacheUntaggedGracePeriod: Duration.days(3) }, cleanup: { enabled: false } });
    t.hasResourceProperties('AWS::ECR::Repository', {
      ImageTagMutability: 'MUTABLE',
      LifecyclePolicy: { LifecyclePolicyText: Match.serializedJson(Match.objectLike({
        rules: [Match.objectLike({ selection: Match.objectLike({ tagStatus: 'untagged', countNumber: 3 }) })],
      })) },
    });
  });

  test('cache repository with the cleanup: no lifecycle rule, which would count the untagged grace from the push', () => {
    // A manifest pushed weeks ago whose tag moved a minute ago would expire within a day while builds may still fetch it.
    const { t } = synth();
    t.hasResourceProperties('AWS::ECR::Repository', { ImageTagMutability: 'MUTABLE', LifecyclePolicy: Match.absent() });
    expect(() => synth({ repositoryOptions: { cacheUntaggedGracePeriod: Duration.days(3) } }))
      .toThrow(/cacheUntaggedGracePeriod \(3 days\) sets ECR's untagged-expiry rule, which is off here .*set cleanup.untaggedGracePeriod instead/);
  });

  test('mutable tag exclusions, KMS key, DESTROY empties the repositories', () => {
    const { t } = synth({ repositoryOptions: { mutableTags: ['latest'], removalPolicy: RemovalPolicy.DESTROY } }, stack => ({
      encryptionKey: new kms.Key(stack, 'Key', { enableKeyRotation: true }),
    }));
    t.hasResourceProperties('AWS::ECR::Repository', {
      ImageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
      ImageTagMutabilityExclusionFilters: [{ ImageTagMutabilityExclusionFilterType: 'WILDCARD', ImageTagMutabilityExclusionFilterValue: 'latest' }],
      EncryptionConfiguration: { EncryptionType: 'KMS', KmsKey: Match.anyValue() },
      EmptyOnDelete: true,
    });
    t.resourceCountIs('AWS::ECR::Repository', 2);
    expect(Object.values(t.findResources('AWS::ECR::Repository')).every(r => r.DeletionPolicy === 'Delete')).toBe(true);
  });

  test('repositories are retained by default', () => {
    const { t } = synth();
    expect(Object.values(t.findResources('AWS::ECR::Repository')).map(r => r.DeletionPolicy)).toEqual(['Retain', 'Retain']);
  });
});

describe('the CodeBuild project', () => {
  const variables = (t: Template): Record<string, unknown> => Object.fromEntries(
    (Object.values(t.findResources('AWS::CodeBuild::Project'))[0].Properties.Environment.EnvironmentVariables as Array<{ Name: string; Value: unknown }>)
      .map(v => [v.Name, v.Value]));

  test('skipUnchangedBuilds: on by default (no variable); false reaches the script as CIB_SKIP_UNCHANGED=false', () => {
    expect(variables(synth().t)).not.toHaveProperty('CIB_SKIP_UNCHANGED');
    expect(variables(synth({ skipUnchangedBuilds: false }).t)).toMatchObject({ CIB_SKIP_UNCHANGED: 'false' });
  });

  test('is privileged, runs the rendered buildspec, which fetches the script asset; the configuration is in its variables', () => {
    const { t, build, stack } = synth();
    const project = Object.values(t.findResources('AWS::CodeBuild::Project'))[0].Properties;
    expect(project.Environment.PrivilegedMode).toBe(true);
    expect(project.Environment.Image).toBe('aws/codebuild/standard:7.0');
    expect(parse(project.Source.BuildSpec)).toEqual(build._buildScript.renderBuildSpecObject(ScriptDelivery.S3));
    expect(project.Source.BuildSpec.length).toBeLessThan(3000);
    expect(Object.keys(variables(t))).toEqual([
      'CIB_SCRIPT_URL', 'CIB_SCRIPT_SHA256', 'APP_REPOSITORY_URI', 'CACHE_REPOSITORY_URI', 'CIB_DOCKERFILE', 'CIB_CONTEXT',
    ]);
    expect(variables(t).CIB_SCRIPT_SHA256).toBe(sha256(build.renderScript()));
    const asset = build.node.findChild('Script') as s3assets.Asset;
    expect(JSON.stringify(variables(t).CIB_SCRIPT_URL)).toContain(`${asset.assetHash}.sh`);
    expect(project.TimeoutInMinutes).toBe(60);
    // The build reads that one object, nothing else of the asset bucket.
    const s3 = projectStatements(t).filter(st => actionsOf(st).some(a => a.startsWith('s3:')));
    expect(s3.map(st => actionsOf(st))).toEqual([['s3:GetObject']]);
    expect(JSON.stringify(stack.resolve(s3[0].Resource))).toContain(`${asset.assetHash}.sh`);
  });

  test('several platforms (registry): one variable, the same script; a token is checked by the script at build time', () => {
    const { t, build } = synth({ platform: 'linux/amd64,linux/arm64' });
    expect(variables(t)).toMatchObject({ CIB_PLATFORM: 'linux/amd64,linux/arm64' });
    expect(build.renderScript()).toBe(new CachedImageBuild(new Stack(new App(), 'Other'), 'B').renderScript());
    const inline = synth({ strategy: CacheStrategy.inline() }, st => ({ platform: new CfnParameter(st, 'Platforms').valueAsString }));
    expect(variables(inline.t)).toMatchObject({ CIB_PLATFORM: { Ref: 'Platforms' } });
  });

  test('every value reaches the build as a variable, tokens included: none becomes script text', () => {
    const { t, stack, build } = synth({}, st => {
      const p = new CfnParameter(st, 'Arg');
      return { buildArgs: { VERSION: p.valueAsString }, target: p.valueAsString, platform: p.valueAsString, containerName: p.valueAsString,
        readOnlyBranches: [p.valueAsString, 'pr-*'], defaultBranch: 'trunk' };
    });
    const v = variables(t);
    const ref = { Ref: 'Arg' };
    expect(v).toMatchObject({ CIB_BUILD_ARG_VERSION: ref, CIB_TARGET: ref, CIB_PLATFORM: ref, CIB_CONTAINER_NAME: ref, CIB_DEFAULT_BRANCH: 'trunk' });
    expect(v.CIB_READ_ONLY_BRANCHES).toEqual({ 'Fn::Join': ['', [ref, ' pr-*']] });
    const buildspec = Object.values(t.findResources('AWS::CodeBuild::Project'))[0].Properties.Source.BuildSpec;
    expect(typeof buildspec).toBe('string');
    expect(stack.resolve(buildspec)).toBe(buildspec);
    expect(build.renderScript()).toBe(new CachedImageBuild(new Stack(new App(), 'Other'), 'B').renderScript());
  });

  test('renderBuildSpec() is self-contained: the script as a here-document, no S3 download, no configuration and no token', () => {
    const { build } = synth({ buildArgs: { VERSION: '1' } });
    const text = build.renderBuildSpec();
    expect(text).not.toMatch(/\$\{Token\[/);
    expect(text).not.toContain('CIB_SCRIPT_URL');
    const spec = parse(text);
    expect(spec.phases.install.commands[0]).toContain(build.renderScript());
    expect(Object.keys(spec.env.variables)).toEqual(['CIB_WORK_DIR', 'CIB_SCRIPT', 'CIB_ARTIFACTS_DIR']);
  });

  test('scriptEnvironment is the configuration the project passes to the script (tokens stay tokens)', () => {
    const { t, build, stack } = synth({ buildArgs: { VERSION: '1' }, target: 'prod', cacheWrite: false });
    const config = Object.fromEntries(Object.entries(variables(t)).filter(([name]) => !name.startsWith('CIB_SCRIPT_')));
    expect(stack.resolve(build.scriptEnvironment)).toEqual(config);
    expect(build.scriptEnvironment).toMatchObject({ CIB_BUILD_ARG_VERSION: '1', CIB_TARGET: 'prod', CIB_CACHE_WRITE: 'false' });
  });

  test('branchCacheTag() names the tag a branch caches to; a bad branch name is an error naming it', () => {
    expect(CachedImageBuild.branchCacheTag('main')).toBe('main');
    expect(CachedImageBuild.branchCacheTag('feature/a')).toMatch(/^feature-a-[0-9a-f]{8}$/);
    expect(CachedImageBuild.branchCacheTag('feature/a')).not.toBe(CachedImageBuild.branchCacheTag('feature-a'));
    expect(() => CachedImageBuild.branchCacheTag('a..b')).toThrow(/branchCacheTag: 'a\.\.b' is not a valid branch name/);
  });

  test('the buildspec exports every variable the pipeline and the cleanup read', () => {
    const { build } = synth();
    expect(parse(build.renderBuildSpec()).env['exported-variables']).toEqual([...EXPORTED_VARIABLES]);
  });

  test.each([
    [CacheStrategy.registry(), 'registry'], [CacheStrategy.inline(), 'inline'], [CacheStrategy.buildah(), 'buildah'],
  ])('strategy %#: the buildspec is the BuildScript of that strategy', (strategy, name) => {
    const { t, build } = synth({ strategy });
    expect(build.strategy.kind).toBe(name);
    expect(build.renderScript()).toContain(`CIB_STRATEGY=${name}`);
    expect(variables(t).CIB_SCRIPT_SHA256).toBe(sha256(build.renderScript()));
    const project = Object.values(t.findResources('AWS::CodeBuild::Project'))[0].Properties;
    expect(project.Environment.Image).toBe(name === 'buildah' ? 'aws/codebuild/standard:8.0' : 'aws/codebuild/standard:7.0');
  });

  test('a custom BuildKit image reaches the build', () => {
    const { t } = synth({ strategy: CacheStrategy.registry({ buildkitImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/buildkit:v0.13.2' }) });
    expect(variables(t).CIB_BUILDKIT_IMAGE).toBe('123456789012.dkr.ecr.eu-west-1.amazonaws.com/buildkit:v0.13.2');
  });

  test('cacheCompression: zstd by default (no variable: the script\'s default), gzip reaches the build; the registry strategy\'s only', () => {
    expect(CacheStrategy.registry().cacheCompression).toBe(CacheCompression.ZSTD);
    expect(variables(synth().t).CIB_CACHE_COMPRESSION).toBeUndefined();
    expect(variables(synth({ strategy: CacheStrategy.registry({ cacheCompression: CacheCompression.GZIP }) }).t).CIB_CACHE_COMPRESSION).toBe('gzip');
    expect(CacheStrategy.inline().cacheCompression).toBeUndefined();
    expect(() => CacheStrategy.registry({ cacheCompression: 'brotli' as CacheCompression }))
      .toThrow(/cacheCompression must be one of zstd, gzip, got 'brotli'/);
  });

  test('buildah on an Ubuntu 22.04 image (buildah 1.23, no remote cache) is refused at synth', () => {
    expect(() => synth({ strategy: CacheStrategy.buildah(), buildImage: codebuild.LinuxBuildImage.STANDARD_7_0 }))
      .toThrow(/buildImage aws\/codebuild\/standard:7.0 is Ubuntu 22.04 or older, whose buildah \(1.23 on 22.04\) has no --cache-from\/--cache-to/);
    expect(() => synth({ strategy: CacheStrategy.buildah(), buildImage: codebuild.LinuxBuildImage.STANDARD_8_0 })).not.toThrow();
  });

  test("the role can push only to its two repositories; on * only GetAuthorizationToken and PutMetricData in the project's namespace", () => {
    const { t } = synth();
    const statements = projectStatements(t);
    const star = statements.filter(s => s.Resource === '*');
    expect(star.flatMap(actionsOf).sort()).toEqual(['cloudwatch:PutMetricData', 'ecr:GetAuthorizationToken']);
    expect(star.find(s => actionsOf(s).includes('cloudwatch:PutMetricData'))).toEqual({
      Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*',
      Condition: { StringEquals: { 'cloudwatch:namespace': { 'Fn::Join': ['', ['CachedImageBuild/', { Ref: expect.stringMatching(/^BuildProject/) }]] } } },
    });
    expect(star.find(s => actionsOf(s).includes('ecr:GetAuthorizationToken'))!.Condition).toBeUndefined();
    const push = statements.filter(s => actionsOf(s).includes('ecr:PutImage'));
    const resources = push.flatMap(s => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]));
    const repos = Object.keys(t.findResources('AWS::ECR::Repository'));
    expect(resources).toHaveLength(2);
    expect(resources.map(r => (r as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]).sort()).toEqual(repos.sort());
    for (const s of statements.filter(x => actionsOf(x).some(a => a.startsWith('ecr:')))) {
      expect(s.Resource === '*' ? actionsOf(s) : ['scoped']).not.toContain('ecr:PutImage');
    }
  });

  test('build secrets come from Secrets Manager, readable only for those secrets', () => {
    const { t, build, stack } = synth({}, st => ({ buildSecrets: { npmrc: secretsmanager.Secret.fromSecretNameV2(st, 'Npm', 'npm-token') } }));
    const project = Object.values(t.findResources('AWS::CodeBuild::Project'))[0].Properties;
    expect(project.Environment.EnvironmentVariables).toContainEqual({ Name: 'CIB_SECRET_0', Type: 'SECRETS_MANAGER', Value: expect.anything() });
    expect(variables(t).CIB_SECRETS).toBe('npmrc=CIB_SECRET_0');
    expect(build.scriptEnvironment).toMatchObject({ CIB_SECRETS: 'npmrc=CIB_SECRET_0' });
    expect(JSON.stringify(stack.resolve(build.scriptEnvironment))).not.toContain('npm-token');
    const statements = projectStatements(t).filter(s => actionsOf(s).some(a => a.startsWith('secretsmanager:')));
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) expect(JSON.stringify(s.Resource)).toContain('secret:npm-token');
  });

  test('VPC, compute type, timeout, project name and log retention are applied', () => {
    const { t } = synth({ computeType: codebuild.ComputeType.LARGE, timeout: Duration.minutes(90), projectName: 'img', logRetention: 7 }, stack => ({
      vpc: ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
        vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-0123456789abcdef0'],
      }),
    }));
    t.hasResourceProperties('AWS::CodeBuild::Project', {
      Name: 'img', TimeoutInMinutes: 90, Environment: Match.objectLike({ ComputeType: 'BUILD_GENERAL1_LARGE' }),
      VpcConfig: Match.objectLike({ VpcId: 'vpc-0123456789abcdef0', Subnets: ['subnet-0123456789abcdef0'] }),
    });
    t.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
  });

  test('with a source the project runs outside CodePipeline', () => {
    const { t } = synth({}, stack => ({
      source: codebuild.Source.s3({ bucket: s3.Bucket.fromBucketName(stack, 'B', 'src'), path: 'src.zip' }),
    }));
    t.hasResourceProperties('AWS::CodeBuild::Project', { Source: Match.objectLike({ Type: 'S3', Location: 'src/src.zip' }) });
  });
});

describe('imported repositories', () => {
  test('nothing is created; grants target the imported repositories', () => {
    const { t } = synth({}, stack => ({
      appRepository: ecr.Repository.fromRepositoryName(stack, 'App', 'team/app'),
      cacheRepository: ecr.Repository.fromRepositoryName(stack, 'Cache', 'team/app-cache'),
    }));
    t.resourceCountIs('AWS::ECR::Repository', 0);
    const push = projectStatements(t).filter(s => actionsOf(s).includes('ecr:PutImage'));
    expect(JSON.stringify(push)).toContain('repository/team/app"');
    expect(JSON.stringify(push)).toContain('repository/team/app-cache"');
  });

  test('one imported, one created', () => {
    const { t, build } = synth({}, stack => ({ appRepository: ecr.Repository.fromRepositoryName(stack, 'App', 'team/app') }));
    t.resourceCountIs('AWS::ECR::Repository', 1);
    t.hasResourceProperties('AWS::ECR::Repository', { ImageTagMutability: 'MUTABLE' });
    expect(build.appRepository.repositoryName).toBe('team/app');
  });

  test('an immutable cache repository defined in the app is refused', () => {
    expect(() => synth({}, stack => ({
      cacheRepository: new ecr.Repository(stack, 'Cache', { imageTagMutability: ecr.TagMutability.IMMUTABLE }),
    }))).toThrow(/cache repository S\/Cache has imageTagMutability IMMUTABLE: cache refs must move/);
  });

  test('the same repository for app and cache is refused', () => {
    expect(() => synth({}, stack => {
      const repo = ecr.Repository.fromRepositoryName(stack, 'R', 'team/app');
      return { appRepository: repo, cacheRepository: repo };
    })).toThrow(/appRepository and cacheRepository are the same repository/);
  });
});

describe('pipeline action', () => {
  function pipelineWith(build: CachedImageBuild, stack: Stack, output?: codepipeline.Artifact) {
    const source = new codepipeline.Artifact('Src');
    const action = build.action({ input: source, output, variablesNamespace: 'Img' });
    new codepipeline.Pipeline(stack, 'P', {
      crossAccountKeys: false,
      stages: [
        { stageName: 'Source', actions: [new actions.S3SourceAction({ actionName: 'S', bucket: s3.Bucket.fromBucketName(stack, 'B', 'src-bucket'), bucketKey: 'k', output: source })] },
        { stageName: 'Build', actions: [action] },
      ],
    });
    return action;
  }

  test('outputs the image artifact and exposes the variables under the namespace', () => {
    const { stack, build } = synth();
    const out = new codepipeline.Artifact('ImageDefs');
    const action = pipelineWith(build, stack, out);
    for (const v of ['IMAGE_URI', 'IMAGE_TAG', 'IMAGE_DIGEST', 'CACHE_HIT_RATIO']) {
      expect(stack.resolve(action.variable(v))).toBe(`#{Img.${v}}`);
    }
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({
        Name: 'Build',
        Actions: [Match.objectLike({ Name: 'BuildImage', Namespace: 'Img', OutputArtifacts: [{ Name: 'ImageDefs' }] })],
      })]),
    });
    expect(parse(build.renderBuildSpec())).toMatchObject({ artifacts: { files: ['imagedefinitions.json', 'imageDetail.json', 'cache-report.json'] } });
  });

  test('a default output artifact is created', () => {
    const { stack, build } = synth();
    const action = pipelineWith(build, stack);
    expect(action.actionProperties.outputs![0].artifactName).toBe('ImgImage');
  });

  test('a bad namespace is refused', () => {
    const { build } = synth();
    expect(() => build.action({ input: new codepipeline.Artifact('x'), variablesNamespace: 'bad ns' })).toThrow(/variablesNamespace .* got 'bad ns'/);
  });
});

describe('validation names the prop and the value', () => {
  test.each<[string, CachedImageBuildProps, RegExp]>([
    ['dockerfile outside the context', { context: 'app', dockerfile: 'Dockerfile' }, /dockerfile 'Dockerfile' is outside the context 'app'/],
    ['absolute context', { context: '/src' }, /context must be relative to the source root, got '\/src'/],
    ['context escaping the source', { context: 'a/../..' }, /context must stay inside the source root, got 'a\/..\/..'/],
    ['empty dockerfile', { dockerfile: '' }, /dockerfile must not be empty/],
    ['invalid default branch', { defaultBranch: 'a..b' }, /defaultBranch 'a..b' is not a valid branch name/],
    ['empty default branch', { defaultBranch: '' }, /defaultBranch '' is not a valid branch name: it is empty/],
    ['empty read-only pattern', { readOnlyBranches: [''] }, /readOnlyBranches entries must be non-empty globs without spaces, got ''/],
    ['read-only with writes off', { cacheWrite: false, readOnlyBranches: ['pr-*'] }, /readOnlyBranches has no effect when cacheWrite is false/],
    ['bad build arg', { buildArgs: { 'A-B': '1' } }, /buildArgs key 'A-B' is not a valid variable name/],
    ['bad target', { target: 'a b' }, /target must be a stage name, got 'a b'/],
    ['bad platform', { platform: 'x86' }, /platform must look like linux\/amd64 .* got 'x86'/],
    ['a platform twice', { platform: 'linux/amd64,linux/arm64,linux/amd64' }, /platform 'linux\/amd64,linux\/arm64,linux\/amd64' names linux\/amd64 twice/],
    ['several platforms, inline', { strategy: CacheStrategy.inline(), platform: 'linux/amd64,linux/arm64' },
      /platform 'linux\/amd64,linux\/arm64' names several platforms: only CacheStrategy.registry\(\) builds .* the inline strategy builds one/],
    ['several platforms, buildah', { strategy: CacheStrategy.buildah(), platform: 'linux/amd64,linux/arm64' },
      /platform 'linux\/amd64,linux\/arm64' names several platforms: .* the buildah strategy builds one platform/],
    ['bad container name', { containerName: 'web app' }, /containerName must be 1-255 of \[A-Za-z0-9_-\], got 'web app'/],
    ['short timeout', { timeout: Duration.minutes(2) }, /timeout must be a whole number of minutes from 5 minutes to 36 hours, got 2 minutes/],
    ['long timeout', { timeout: Duration.hours(37) }, /timeout must be a whole number of minutes from 5 minutes to 36 hours, got 1 day 13 hours/],
    ['timeout in seconds', { timeout: Duration.seconds(330) }, /timeout must be a whole number of minutes .* got 5 minutes 30 seconds/],
    ['project name', { projectName: 'bad name!' }, /projectName must be 2-150 of \[A-Za-z0-9_-\] starting with a letter or digit, got 'bad name!'/],
    ['keep count', { repositoryOptions: { keepTaggedImages: 0 } }, /keepTaggedImages must be an integer from 1 to 2147483647 .* got 0/],
    ['huge keep count', { repositoryOptions: { keepTaggedImages: 1e300 } }, /keepTaggedImages must be an integer from 1 to 2147483647 .* got 1e\+300/],
    ['context -', { context: '-' }, /context '-' starts with '-', which an engine reads as an option/],
    ['context -x', { context: '-x/app' }, /context '-x\/app' starts with '-', which an engine reads as an option/],
    ['newline in context', { context: 'a\nb' }, /context must be one line without control characters, got "a\\nb"/],
    ['newline in dockerfile', { dockerfile: 'Docker\nfile' }, /dockerfile must be one line without control characters, got "Docker\\nfile"/],
    ['dockerfile .', { dockerfile: '.' }, /dockerfile must name a file, got '.' \(e.g. 'Dockerfile'\)/],
    ['dockerfile a directory', { context: 'app', dockerfile: 'app/' }, /dockerfile must name a file, got 'app\/' \(e.g. 'app\/Dockerfile'\)/],
    ['dockerfile the context', { context: 'app', dockerfile: 'app' }, /dockerfile must name a file, got 'app'/],
    ['300-character default branch', { defaultBranch: 'b'.repeat(300) }, /defaultBranch is 300 characters; as the Branch dimension .* at most 255/],
    ['non-ASCII default branch', { defaultBranch: 'häuptling' }, /defaultBranch 'häuptling' is not ASCII/],
    ['cleanup grace 0', { cleanup: { untaggedGracePeriod: Duration.seconds(0) } }, /cleanup.untaggedGracePeriod must be at least 1 hour .* got 0 seconds/],
    ['grace period', { repositoryOptions: { cacheUntaggedGracePeriod: Duration.hours(5) }, cleanup: { enabled: false } },
      /cacheUntaggedGracePeriod must be a whole number of days >= 1 .* got 5 hours/],
    ['repository name', { repositoryOptions: { appRepositoryName: 'App' } }, /appRepositoryName must be a valid ECR repository name .* got 'App'/],
    ['mutable tag pattern', { repositoryOptions: { mutableTags: ['a b'] } }, /mutableTags entries must be tag wildcards .* got 'a b'/],
    ['cleanup idle timeout', { cleanup: { idleTimeout: Duration.minutes(10) } }, /cleanup.idleTimeout must be at least 1 hour, got 10 minutes/],
    ['cleanup unknown option', { cleanup: { maxRefsPerBranch: 2 } as never }, /cleanup.maxRefsPerBranch is not a cleanup option/],
    ['cleanup trust index pull time', { cleanup: { trustIndexPullTime: 'yes' as never } }, /cleanup.trustIndexPullTime must be a boolean, got 'yes'/],
    ['cleanup deletes', { cleanup: { maxDeletesPerRun: 2.5 } }, /cleanup.maxDeletesPerRun must be an integer >= 1, got 2.5/],
    ['cleanup fraction', { cleanup: { maxDeleteFraction: 1.5 } }, /cleanup.maxDeleteFraction must be in \(0, 1\], got 1.5/],
    ['cleanup disabled with options', { cleanup: { enabled: false, dryRun: true } }, /cleanup.enabled is false but dryRun is set/],
  ])('%s', (_name, props, message) => {
    expect(() => synth(props)).toThrow(message);
  });

  test.each(['.', '..'])('the secret id %s is refused', id => {
    expect(() => synth({}, stack => ({ buildSecrets: { [id]: secretsmanager.Secret.fromSecretNameV2(stack, 'N', 'n') } })))
      .toThrow(`buildSecrets id '${id}' must be 1-64 of [A-Za-z0-9_.-]`);
  });

  test('a 300-character default branch is fine without metrics (it is a dimension only of the metrics)', () => {
    expect(() => synth({ defaultBranch: 'b'.repeat(300), metrics: false, cacheHitAlarm: { enabled: false } })).not.toThrow();
  });

  test.each<[string[], RegExp | undefined]>([
    [['*'], /readOnlyBranches '\*' matches every branch: no build will ever write cache/],
    [['**'], /readOnlyBranches '\*\*' matches every branch/],
    [['m*'], /readOnlyBranches 'm\*' matches the default branch 'main': it will never write cache/],
    [['[lm]ain'], /readOnlyBranches '\[lm\]ain' matches the default branch 'main'/],
    [['pr-*', 'dependabot/*'], undefined],
    [['ma?'], undefined],
  ])('readOnlyBranches %j: a warning when no build, or the default branch, would write cache', (globs, warning) => {
    const { stack } = synth({ readOnlyBranches: globs });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map(w => String(w.entry.data));
    if (warning) expect(warnings).toEqual([expect.stringMatching(warning)]);
    else expect(warnings).toEqual([]);
  });

  test('a metric helper refuses a branch CloudWatch cannot take as a dimension, naming it', () => {
    const { build } = synth();
    expect(() => build.metricCacheHitRatio('x'.repeat(256))).toThrow(/branch is 256 characters; .* at most 255/);
  });

  test('a secret id that is also a build arg is refused', () => {
    expect(() => synth({ buildArgs: { npmrc: 'x' } }, stack => ({
      buildSecrets: { npmrc: secretsmanager.Secret.fromSecretNameV2(stack, 'N', 'n') },
    }))).toThrow(/'npmrc' is both a build arg and a build secret/);
  });

  test('subnetSelection without a vpc is refused', () => {
    expect(() => synth({ subnetSelection: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS } })).toThrow(/subnetSelection needs vpc/);
  });

  test('a repository name next to an imported repository is refused', () => {
    expect(() => synth({ repositoryOptions: { appRepositoryName: 'x' } }, stack => ({ appRepository: ecr.Repository.fromRepositoryName(stack, 'A', 'a') })))
      .toThrow(/repositoryOptions.appRepositoryName 'x' conflicts with appRepository/);
  });

  test('an empty BuildKit image is refused by the factory', () => {
    expect(() => CacheStrategy.registry({ buildkitImage: ' ' })).toThrow(/buildkitImage must be an image reference, got ' '/);
  });

  test('nothing is half-created: a failed construct leaves no resources', () => {
    const stack = new Stack(new App(), 'S');
    new CfnWaitConditionHandle(stack, 'Marker');
    expect(() => new CachedImageBuild(stack, 'B', { context: '/abs' })).toThrow();
    const t = Template.fromStack(stack);
    expect(Object.keys(t.toJSON().Resources ?? {})).toEqual(['Marker']);
  });
});
