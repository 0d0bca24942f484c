import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { CachedImageBuild, CachedImageBuildGroup, CachedImageBuildGroupProps, CachedImageBuildProps } from '../lib';

function stack(): Stack {
  return new Stack(new App(), 'S', { env: { account: '123456789012', region: 'eu-west-1' } });
}

/** A group 'Images' with the images web and api. */
function twoImages(groupProps: CachedImageBuildGroupProps = {}, apiProps: Partial<CachedImageBuildProps> = {}) {
  const s = stack();
  const group = new CachedImageBuildGroup(s, 'Images', groupProps);
  const web = new CachedImageBuild(s, 'Web', { group, imageName: 'web', dockerfile: 'web/Dockerfile' });
  const api = new CachedImageBuild(s, 'Api', { group, imageName: 'api', dockerfile: 'api/Dockerfile', ...apiProps });
  return { s, group, web, api, t: Template.fromStack(s) };
}

const variable = (name: string, value: unknown) => Match.objectLike({ Name: name, Value: value });

describe('CachedImageBuildGroup', () => {
  test('one shared cache repository, an app repository and a project per image', () => {
    const { t, group, web, api } = twoImages();
    t.resourceCountIs('AWS::ECR::Repository', 3);
    t.resourceCountIs('AWS::CodeBuild::Project', 2);
    expect(web.cacheRepository).toBe(group.cacheRepository);
    expect(api.cacheRepository).toBe(group.cacheRepository);
    expect(web.appRepository).not.toBe(api.appRepository);
    t.hasResourceProperties('AWS::ECR::Repository', { ImageTagMutability: 'MUTABLE', ImageScanningConfiguration: { ScanOnPush: false } });
    expect(group.images).toEqual([web, api]);
  });

  test('each image names its refs and reads every image of the group, through environment variables only', () => {
    const { t, web } = twoImages();
    for (const name of ['web', 'api']) {
      t.hasResourceProperties('AWS::CodeBuild::Project', {
        Environment: {
          EnvironmentVariables: Match.arrayWith([
            variable('CIB_IMAGE_NAME', name), variable('CIB_CACHE_FROM_IMAGES', { 'Fn::Join': [' ', ['web', 'api']] }),
          ]),
        },
      });
    }
    // The script is the same as any other project's of the strategy: no image name in it.
    expect(web.renderScript()).toBe(new CachedImageBuild(stack(), 'Alone').renderScript());
  });

  test('crossImageCache: false reads the own refs only', () => {
    const { t } = twoImages({ crossImageCache: false });
    const projects = Object.values(t.findResources('AWS::CodeBuild::Project'));
    for (const p of projects) {
      const names = p.Properties.Environment.EnvironmentVariables.map((v: { Name: string }) => v.Name);
      expect(names).toContain('CIB_IMAGE_NAME');
      expect(names).not.toContain('CIB_CACHE_FROM_IMAGES');
    }
  });

  test('one cleanup function whose configuration lists every project with its own default branch tag', () => {
    const { t, group, web, api, s } = twoImages({ defaultBranch: 'trunk' });
    t.resourceCountIs('AWS::Lambda::Function', 1);
    expect(web.cleanup).toBe(group.cleanup);
    expect(api.cleanup).toBe(group.cleanup);
    const fn = Object.values(t.findResources('AWS::Lambda::Function'))[0];
    const env = fn.Properties.Environment.Variables;
    expect(JSON.parse(env.POLICY)).toEqual({ defaultBranchTag: 'web--trunk' });
    const parts: unknown[] = env.PROJECTS['Fn::Join'][1];
    const text = parts.map(p => (typeof p === 'string' ? p : (p as { Ref: string }).Ref)).join('');
    const id = (b: CachedImageBuild) => s.getLogicalId(b.project.node.defaultChild as never);
    expect(JSON.parse(text)).toEqual([
      { projectName: id(web), defaultBranchTag: 'web--trunk', imageName: 'web' },
      { projectName: id(api), defaultBranchTag: 'api--trunk', imageName: 'api' },
    ]);
  });

  test('the cleanup may read the history of each project and nothing else; each project role pulls and pushes the shared repository', () => {
    const { t, s, web, api, group } = twoImages();
    const arn = (c: { node: { defaultChild?: unknown } }) => ({ 'Fn::GetAtt': [s.getLogicalId(c.node.defaultChild as never), 'Arn'] });
    t.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('^ImagesCleanupRole') }],
      PolicyDocument: {
        Statement: Match.arrayWith([{
          Action: ['codebuild:ListBuildsForProject', 'codebuild:BatchGetBuilds'], Effect: 'Allow', Resource: [arn(web.project), arn(api.project)],
        }]),
      },
    });
    for (const build of [web, api]) {
      const role = s.getLogicalId(build.project.role!.node.defaultChild as never);
      const policy = Object.values(t.findResources('AWS::IAM::Policy')).find(p => p.Properties.Roles[0].Ref === role)!;
      const ecrStatements = policy.Properties.PolicyDocument.Statement.filter(
        (st: { Action: string[] | string }) => [st.Action].flat().includes('ecr:PutImage'));
      const resources = ecrStatements.map((st: { Resource: unknown }) => st.Resource);
      expect(resources).toEqual(expect.arrayContaining([arn(group.cacheRepository as ecr.Repository)]));
    }
  });

  test('one dashboard for the group, a section per image; each image keeps its alarm and its metrics namespace', () => {
    const { t, group, web, api } = twoImages();
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    expect(web.dashboard).toBe(group.dashboard);
    expect(api.dashboard).toBe(group.dashboard);
    expect(web.cacheHitAlarm).toBeDefined();
    expect(api.cacheHitAlarm).toBeDefined();
    const body = JSON.stringify(Object.values(t.findResources('AWS::CloudWatch::Dashboard'))[0].Properties.DashboardBody);
    for (const text of ['### Image `web`', '### Image `api`', 'web: Cache hit ratio per build', 'api: Cache hit ratio per build',
      'Cache repository size', 'Cleanup alarms']) expect(body).toContain(text);
    expect(body).toContain('CachedImageBuild/');
  });

  test('cleanup and dashboard can be turned off for the group', () => {
    const { t, web } = twoImages({ cleanup: { enabled: false }, dashboard: { enabled: false } });
    t.resourceCountIs('AWS::Lambda::Function', 0);
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
    expect(web.cleanup).toBeUndefined();
    // Without the cleanup ECR's own rule expires untagged cache manifests.
    t.hasResourceProperties('AWS::ECR::Repository', { ImageTagMutability: 'MUTABLE', LifecyclePolicy: Match.anyValue() });
  });

  test('every invalid combination is refused with the value, before anything of the image is created', () => {
    const s = stack();
    const group = new CachedImageBuildGroup(s, 'Images', { defaultBranch: 'main' });
    new CachedImageBuild(s, 'Web', { group, imageName: 'web' });
    const refused: [Partial<CachedImageBuildProps>, RegExp][] = [
      [{ group, imageName: 'web' }, /S\/Bad: imageName 'web' is already used by S\/Web in group S\/Images/],
      [{ group }, /group S\/Images needs an imageName/],
      [{ imageName: 'web' }, /imageName 'web' names an image in a group's shared cache repository: set group too/],
      [{ group, imageName: 'Web' }, /imageName 'Web' is not an image name/],
      [{ group, imageName: 'a--b' }, /imageName 'a--b' is not an image name: .*never --/],
      [{ group, imageName: 'x'.repeat(33) }, /is 33 characters; at most 32/],
      [{ group, imageName: 'api', cleanup: { dryRun: true } }, /cleanup is the group's \(S\/Images\)/],
      [{ group, imageName: 'api', dashboard: { enabled: false } }, /dashboard is the group's/],
      [{ group, imageName: 'api', cacheRepository: ecr.Repository.fromRepositoryName(s, 'C', 'c') }, /cacheRepository is the group's/],
      [{ group, imageName: 'api', repositoryOptions: { cacheRepositoryName: 'c' } }, /repositoryOptions.cacheRepositoryName is the group's/],
      [{ group, imageName: 'api', defaultBranch: 'develop' }, /defaultBranch 'develop' differs from group S\/Images's 'main'/],
    ];
    for (const [props, message] of refused) {
      expect(() => new CachedImageBuild(s, 'Bad', props as CachedImageBuildProps)).toThrow(message);
      // Nothing half-created: the failed image left no child, and the next attempt may use the same id.
      expect(s.node.tryFindChild('Bad')?.node.children ?? []).toEqual([]);
      s.node.tryRemoveChild('Bad');
    }
    expect(group.imageNames).toEqual(['web']);
  });

  test('an image in another stack is refused; a group without images fails synth', () => {
    const app = new App();
    const a = new Stack(app, 'A');
    const group = new CachedImageBuildGroup(a, 'Images');
    expect(() => new CachedImageBuild(new Stack(app, 'B'), 'Web', { group, imageName: 'web' }))
      .toThrow(/B\/Web: group A\/Images is in stack A, the image in B: a group's images must be in its stack/);
    expect(() => app.synth()).toThrow(/the group has no image/);
  });

  test('group props: an immutable imported cache repository, an invalid default branch, options for an imported repository', () => {
    const s = stack();
    const immutable = new ecr.Repository(s, 'Immutable', { imageTagMutability: ecr.TagMutability.IMMUTABLE });
    expect(() => new CachedImageBuildGroup(s, 'G1', { cacheRepository: immutable })).toThrow(/imageTagMutability IMMUTABLE: cache refs must move/);
    expect(() => new CachedImageBuildGroup(s, 'G2', { defaultBranch: 'a..b' })).toThrow(/defaultBranch 'a..b' is not a valid branch name/);
    expect(() => new CachedImageBuildGroup(s, 'G3', { cacheRepository: ecr.Repository.fromRepositoryName(s, 'R', 'r'), cacheRepositoryName: 'x' }))
      .toThrow(/cacheRepositoryName applies to the created cache repository only/);
    expect(() => new CachedImageBuildGroup(s, 'G4', { cleanup: { maxDeleteFraction: 2 } })).toThrow(/maxDeleteFraction must be in \(0, 1\], got 2/);
  });
});
