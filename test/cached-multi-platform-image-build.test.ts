import { App, Duration, Stack, Token } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parse } from 'yaml';
import {
  CachedImageBuild, CachedImageBuildGroup, CachedMultiPlatformImageBuild, CachedMultiPlatformImageBuildProps, CacheStrategy,
} from '../lib';
import { quotaViolations } from './quotas';

function stack(): Stack {
  return new Stack(new App(), 'S', { env: { account: '123456789012', region: 'eu-west-1' } });
}
const AMD_ARM = [{ platform: 'linux/amd64' }, { platform: 'linux/arm64' }];
function multi(props: Partial<CachedMultiPlatformImageBuildProps> = {}, s: Stack = stack()) {
  const build = new CachedMultiPlatformImageBuild(s, 'Api', { platforms: AMD_ARM, ...props });
  return { s, build, t: Template.fromStack(s) };
}
const envOf = (t: Template, s: Stack, project: codebuild.IProject): Record<string, unknown> => {
  const res = t.toJSON().Resources[s.getLogicalId(project.node.defaultChild as never)];
  return Object.fromEntries(res.Properties.Environment.EnvironmentVariables.map((v: { Name: string; Value: unknown }) => [v.Name, v.Value]));
};
const projectOf = (t: Template, s: Stack, project: codebuild.IProject) =>
  t.toJSON().Resources[s.getLogicalId(project.node.defaultChild as never)].Properties;

describe('CachedMultiPlatformImageBuild (native: one project per platform, then a merge)', () => {
  test('an x86 project and an ARM project, privileged, each building its platform with its own tag suffix and cache refs', () => {
    const { t, s, build } = multi();
    t.resourceCountIs('AWS::CodeBuild::Project', 3);
    const [amd, arm] = build.platformBuilds;
    expect(projectOf(t, s, amd.project).Environment).toMatchObject({ Type: 'LINUX_CONTAINER', Image: 'aws/codebuild/standard:7.0', PrivilegedMode: true });
    // SMALL like the x86 project (LinuxArmBuildImage's own default would be LARGE).
    expect(projectOf(t, s, arm.project).Environment).toMatchObject({
      Type: 'ARM_CONTAINER', Image: 'aws/codebuild/amazonlinux-aarch64-standard:3.0', PrivilegedMode: true, ComputeType: 'BUILD_GENERAL1_SMALL',
    });
    expect(projectOf(t, s, amd.project).Environment.ComputeType).toBe('BUILD_GENERAL1_SMALL');
    expect(envOf(t, s, amd.project)).toMatchObject({ CIB_PLATFORM: 'linux/amd64', CIB_PLATFORM_TAGS: 'true', CIB_IMAGE_NAME: 'linux-amd64' });
    expect(envOf(t, s, arm.project)).toMatchObject({ CIB_PLATFORM: 'linux/arm64', CIB_PLATFORM_TAGS: 'true', CIB_IMAGE_NAME: 'linux-arm64' });
    // A platform's build cannot hit another platform's records: it reads its own refs only.
    expect(envOf(t, s, arm.project)).not.toHaveProperty('CIB_CACHE_FROM_IMAGES');
    // The script is every project's of the strategy: no platform in it.
    expect(amd.renderScript()).toBe(new CachedImageBuild(stack(), 'Alone').renderScript());
  });

  test('one app repository for the platform images and the index, one cache repository, one cleanup reading both projects', () => {
    const { t, s, build } = multi();
    t.resourceCountIs('AWS::ECR::Repository', 2);
    for (const b of build.platformBuilds) {
      expect(b.appRepository).toBe(build.appRepository);
      expect(b.cacheRepository).toBe(build.cacheRepository);
    }
    // The platform images are counted apart, twice those of the 200 releases kept, so a kept index keeps its platforms.
    const app = Object.values(t.findResources('AWS::ECR::Repository')).find(r => r.Properties.ImageTagMutability === 'IMMUTABLE')!;
    const rules = JSON.parse(app.Properties.LifecyclePolicy.LifecyclePolicyText).rules;
    expect(rules.map((r: { rulePriority: number; selection: unknown }) => [r.rulePriority, r.selection])).toEqual([
      [1, { tagStatus: 'untagged', countType: 'sinceImagePushed', countNumber: 1, countUnit: 'days' }],
      [2, { tagStatus: 'tagged', tagPatternList: ['*--*'], countType: 'imageCountMoreThan', countNumber: 800 }],
      [3, { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 200 }],
    ]);
    t.resourceCountIs('AWS::Lambda::Function', 1);
    const fn = Object.values(t.findResources('AWS::Lambda::Function'))[0];
    const parts: unknown[] = fn.Properties.Environment.Variables.PROJECTS['Fn::Join'][1];
    const text = parts.map(p => (typeof p === 'string' ? p : (p as { Ref: string }).Ref)).join('');
    const id = (b: CachedImageBuild) => s.getLogicalId(b.project.node.defaultChild as never);
    expect(JSON.parse(text)).toEqual([
      { projectName: id(build.platformBuilds[0]), defaultBranchTag: 'linux-amd64--main', imageName: 'linux-amd64' },
      { projectName: id(build.platformBuilds[1]), defaultBranchTag: 'linux-arm64--main', imageName: 'linux-arm64' },
    ]);
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    expect(build.cleanup).toBeDefined();
    expect(build.dashboard).toBeDefined();
  });

  test('the merge project runs the merge step only, unprivileged, and may read the app repository and put images in it, nothing else', () => {
    const { t, s, build } = multi({ containerName: 'api' });
    const merge = projectOf(t, s, build.mergeProject);
    expect(merge.Environment).toMatchObject({ Type: 'LINUX_CONTAINER', PrivilegedMode: false, ComputeType: 'BUILD_GENERAL1_SMALL' });
    const spec = parse(merge.Source.BuildSpec);
    expect(spec.phases.build.commands).toEqual(['bash "$CIB_SCRIPT" merge']);
    expect(spec.phases.post_build.commands).toEqual(['. "$CIB_WORK_DIR/exports.env"']);
    expect(spec.env['exported-variables']).toContain('IMAGE_DIGEST');
    expect(spec.artifacts.files).toEqual(['imagedefinitions.json', 'imageDetail.json', 'cache-report.json']);
    const env = envOf(t, s, build.mergeProject);
    expect(env).toMatchObject({ CIB_MERGE_PLATFORMS: 'linux/amd64 linux/arm64', CIB_CONTAINER_NAME: 'api' });
    expect(env).not.toHaveProperty('CACHE_REPOSITORY_URI');
    // The same script asset as the platform builds'.
    expect(env.CIB_SCRIPT_SHA256).toBe(envOf(t, s, build.platformBuilds[0].project).CIB_SCRIPT_SHA256);
    const role = s.getLogicalId(build.mergeProject.role!.node.defaultChild as never);
    const policy = Object.values(t.findResources('AWS::IAM::Policy')).find(p => p.Properties.Roles[0].Ref === role)!;
    const ecrActions = policy.Properties.PolicyDocument.Statement.flatMap((st: { Action: string[] | string }) => [st.Action].flat())
      .filter((a: string) => a.startsWith('ecr:'));
    expect(ecrActions.sort()).toEqual(['ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage', 'ecr:GetAuthorizationToken',
      'ecr:GetDownloadUrlForLayer', 'ecr:PutImage'].sort());
    const cacheRepo = s.getLogicalId(build.cacheRepository.node.defaultChild as never);
    expect(JSON.stringify(policy.Properties.PolicyDocument)).not.toContain(cacheRepo);
  });

  test('actions(): the platforms in parallel, then the merge, whose output and namespace name the index', () => {
    const s = stack();
    const build = new CachedMultiPlatformImageBuild(s, 'Api', { platforms: AMD_ARM });
    const source = new codepipeline.Artifact('Source');
    const pipeline = new codepipeline.Pipeline(s, 'P', { pipelineType: codepipeline.PipelineType.V2 });
    pipeline.addStage({ stageName: 'Source', actions: [new actions.S3SourceAction({ actionName: 'S', bucket: new s3.Bucket(s, 'B'), bucketKey: 'k', output: source })] });
    const acts = build.actions({ input: source, environmentVariables: { IMAGE_TAG: { value: 'v1' } } });
    pipeline.addStage({ stageName: 'Build', actions: acts });
    const t = Template.fromStack(s);
    const stage = t.toJSON().Resources[s.getLogicalId(pipeline.node.defaultChild as never)].Properties.Stages[1];
    expect(stage.Actions.map((a: { Name: string; RunOrder: number; Namespace: string }) => [a.Name, a.RunOrder, a.Namespace])).toEqual([
      ['BuildImage-linux-amd64', 1, 'Image-linux-amd64'], ['BuildImage-linux-arm64', 1, 'Image-linux-arm64'], ['BuildImage', 2, 'Image'],
    ]);
    expect(stage.Actions[2].OutputArtifacts).toEqual([{ Name: 'ImageImage' }]);
    for (const a of stage.Actions) expect(a.Configuration.EnvironmentVariables).toContain('"name":"IMAGE_TAG","type":"PLAINTEXT","value":"v1"');
    expect(quotaViolations(t.toJSON())).toEqual([]);
  });

  test('in a group: the platform images are <imageName>.<os>-<arch>, cleaned by the group with its other images', () => {
    const s = stack();
    const group = new CachedImageBuildGroup(s, 'Images');
    new CachedImageBuild(s, 'Web', { group, imageName: 'web' });
    const { build, t } = multi({ group, imageName: 'api' }, s);
    expect(build.group).toBe(group);
    expect(build.cacheRepository).toBe(group.cacheRepository);
    expect(group.imageNames).toEqual(['web', 'api.linux-amd64', 'api.linux-arm64']);
    t.resourceCountIs('AWS::Lambda::Function', 1);
    expect(envOf(t, s, build.platformBuilds[1].project)).toMatchObject({ CIB_IMAGE_NAME: 'api.linux-arm64' });
    // The group shares cache between images, never between the platforms of one index: those records cannot hit.
    const fromImages = (b: CachedImageBuild) => JSON.stringify(envOf(t, s, b.project).CIB_CACHE_FROM_IMAGES);
    expect(fromImages(build.platformBuilds[0])).toBe(JSON.stringify({ 'Fn::Join': [' ', ['web', 'api.linux-amd64']] }));
    expect(fromImages(build.platformBuilds[1])).toBe(JSON.stringify({ 'Fn::Join': [' ', ['web', 'api.linux-arm64']] }));
  });

  test('cdk-nag AwsSolutions finds nothing unacknowledged, the merge project included', () => {
    const app = new App();
    const s = new Stack(app, 'S', { env: { account: '123456789012', region: 'eu-west-1' } });
    new CachedMultiPlatformImageBuild(s, 'Api', { platforms: AMD_ARM });
    const report = new AwsSolutionsChecks(s).validateScope(s);
    expect(report.violations.map(v => `${v.ruleName} at ${v.violatingResources.map(r => r.constructPath).join(', ')}`)).toEqual([]);
  });

  test('projectName names every project; the buildah strategy and other platforms take the build images given', () => {
    const { t, s, build } = multi({
      projectName: 'api', strategy: CacheStrategy.buildah(),
      platforms: [{ platform: 'linux/amd64' }, { platform: 'linux/386', buildImage: codebuild.LinuxBuildImage.STANDARD_8_0, computeType: codebuild.ComputeType.LARGE }],
    });
    expect([...build.platformBuilds.map(b => projectOf(t, s, b.project).Name), projectOf(t, s, build.mergeProject).Name])
      .toEqual(['api-linux-amd64', 'api-linux-386', 'api-merge']);
    expect(projectOf(t, s, build.platformBuilds[0].project).Environment.Image).toBe('aws/codebuild/standard:8.0');
    expect(projectOf(t, s, build.platformBuilds[1].project).Environment).toMatchObject({ Image: 'aws/codebuild/standard:8.0', ComputeType: 'BUILD_GENERAL1_LARGE' });
  });

  test.each<[string, Partial<CachedMultiPlatformImageBuildProps>, string]>([
    ['one platform', { platforms: [{ platform: 'linux/amd64' }] }, 'platforms must name two or more platforms (one index of them), got 1'],
    ['a platform twice', { platforms: [{ platform: 'linux/amd64' }, { platform: 'linux/amd64' }] }, 'platforms names linux/amd64 twice'],
    ['a bad platform', { platforms: [{ platform: 'linux/amd64' }, { platform: 'arm64' }] }, "platforms entries must look like linux/arm64 (os/arch or os/arch/variant), got 'arm64'"],
    ['several in one', { platforms: [{ platform: 'linux/amd64' }, { platform: 'linux/arm64,linux/386' }] }, "got 'linux/arm64,linux/386'"],
    ['platform', { platform: 'linux/amd64' }, 'platform is not a property of a native multi-platform build: the platforms are `platforms`'],
    ['buildImage', { buildImage: codebuild.LinuxBuildImage.STANDARD_7_0 }, 'buildImage is not a property of a native multi-platform build'],
    ['source', { source: codebuild.Source.gitHub({ owner: 'o', repo: 'r' }) }, "source is not a property of a native multi-platform build: the merge must run after every platform's build"],
    ['skipUnchangedBuilds', { skipUnchangedBuilds: true }, "skipUnchangedBuilds is not a property of a native multi-platform build: each platform's image is built"],
    ['no image for 386', { platforms: [{ platform: 'linux/amd64' }, { platform: 'linux/386' }] }, 'platforms: linux/386 needs a buildImage (a CodeBuild image of that architecture)'],
    ['buildah on ARM without an image', { strategy: CacheStrategy.buildah() }, 'linux/arm64 needs a buildImage (a CodeBuild image of that architecture) with buildah 1.29 or later'],
    ['an x86 image for ARM', { platforms: [{ platform: 'linux/amd64' }, { platform: 'linux/arm64', buildImage: codebuild.LinuxBuildImage.STANDARD_7_0 }] },
      'platforms: linux/arm64 is built natively, on an ARM host: its buildImage must be a LinuxArmBuildImage, got a LINUX_CONTAINER image'],
    ['an ARM image for x86', { platforms: [{ platform: 'linux/amd64', buildImage: codebuild.LinuxArmBuildImage.AMAZON_LINUX_2_STANDARD_3_0 }, { platform: 'linux/arm64' }] },
      'platforms: linux/amd64 is built natively: its buildImage must not be an ARM image (ARM_CONTAINER)'],
    ['imageName without a group', { imageName: 'api' }, "imageName 'api' names the image in a group: set group too, or leave it out"],
    ['a long project name', { projectName: 'p'.repeat(140) }, 'is too long: its projects are <projectName>-<os>-<arch> and <projectName>-merge, at most 150 characters'],
    ['a cache grace period', { repositoryOptions: { cacheUntaggedGracePeriod: Duration.days(2) } }, 'repositoryOptions.cacheUntaggedGracePeriod does not apply'],
    ['a token count', { repositoryOptions: { keepTaggedImages: Token.asNumber({ Ref: 'N' }) } }, 'repositoryOptions.keepTaggedImages must be a literal'],
  ])('%s is refused, naming the value', (_name, props, message) => {
    expect(() => multi(props)).toThrow(message);
  });

  test('in a group: a missing or too long imageName, and the group\'s own settings, are refused', () => {
    const s = stack();
    const group = new CachedImageBuildGroup(s, 'Images');
    expect(() => new CachedMultiPlatformImageBuild(s, 'A', { platforms: AMD_ARM, group })).toThrow('needs an imageName');
    expect(() => new CachedMultiPlatformImageBuild(s, 'B', { platforms: AMD_ARM, group, imageName: 'a-rather-long-image-name' }))
      .toThrow("the linux/amd64 image's cache refs would be named 'a-rather-long-image-name.linux-amd64', which is 36 characters; at most 32");
    expect(() => new CachedMultiPlatformImageBuild(s, 'C', { platforms: AMD_ARM, group, imageName: 'c', cleanup: { enabled: false } }))
      .toThrow('cleanup is the group\'s');
    expect(() => new CachedMultiPlatformImageBuild(s, 'D', { platforms: AMD_ARM, group, imageName: 'd', defaultBranch: 'trunk' }))
      .toThrow("defaultBranch 'trunk' differs from group S/Images's 'main'");
  });

  test('actions(): names that the platform suffixes would make invalid are refused, naming the value', () => {
    const { build } = multi();
    const input = new codepipeline.Artifact('Source');
    expect(() => build.actions({ input, variablesNamespace: 'Img@1' })).toThrow("variablesNamespace 'Img@1' names the platforms' namespaces");
    expect(() => build.actions({ input, actionName: 'a'.repeat(95) })).toThrow("names the platforms' actions (<actionName>-<os>-<arch>): at most 88 characters");
  });
});
