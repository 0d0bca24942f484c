/**
 * One test per rule of the strict fakes: each proves the fake refuses (or answers) what the API reference says the
 * service refuses (or answers), through a real SDK client. The rules and their sources are in the fakes' comments.
 */
import {
  BatchGetBuildsCommand, ListBuildsForProjectCommand, ListProjectsCommand,
} from '@aws-sdk/client-codebuild';
import {
  BatchDeleteImageCommand, BatchGetImageCommand, DescribeImagesCommand, DescribeRepositoriesCommand, ImageIdentifier,
} from '@aws-sdk/client-ecr';
import { CODEBUILD_PAGE, FakeBuild, FakeCodeBuild } from './codebuild';
import { FakeEcr, FakeImage, OCI_INDEX, OCI_MANIFEST } from './ecr';

const REPO = 'app-cache';
const PROJECT = 'app-build';
const T0 = Date.UTC(2025, 0, 1);
const INDEX_TYPES = [OCI_INDEX];

const digest = (k: number | string): string => `sha256:${String(k).padStart(64, '0')}`;
const manifests = (n: number, fields: Partial<Omit<FakeImage, 'digest'>> = {}): FakeImage[] =>
  Array.from({ length: n }, (_, k) => ({ digest: digest(k), pushedAt: T0 + k, sizeBytes: 1, ...fields }));
const ids = (n: number): ImageIdentifier[] => Array.from({ length: n }, (_, k) => ({ imageDigest: digest(k) }));
const builds = (n: number): FakeBuild[] => Array.from({ length: n }, (_, k) => ({ startTime: T0 + k * 60_000 }));

/** Resolves to the rejection's name and message, or fails the test when the call succeeded. */
async function refusal(call: Promise<unknown>): Promise<{ name: string; message: string }> {
  try {
    await call;
  } catch (e) {
    return { name: (e as Error).name, message: (e as Error).message };
  }
  throw new Error('expected the call to be refused, and it succeeded');
}

describe('strict ECR fake', () => {
  test('repositoryName must be 2..256 characters of the repository name pattern (InvalidParameterException)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO }).client();
    for (const repositoryName of ['a', 'x'.repeat(257), 'Upper/Case', 'trailing-']) {
      expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName })))).toMatchObject({ name: 'InvalidParameterException' });
    }
  });

  test('registryId must be 12 digits (InvalidParameterException), and another registry holds no such repository', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO }).client();
    expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, registryId: '12345' }))))
      .toMatchObject({ name: 'InvalidParameterException', message: expect.stringMatching(/registryId/) });
    expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, registryId: '999999999999' }))))
      .toMatchObject({ name: 'RepositoryNotFoundException' });
  });

  test('a repository that does not exist is RepositoryNotFoundException in all three operations', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(1) }).client();
    const repositoryName = 'other-repo';
    for (const call of [
      ecr.send(new DescribeImagesCommand({ repositoryName })),
      ecr.send(new BatchGetImageCommand({ repositoryName, imageIds: ids(1), acceptedMediaTypes: [OCI_MANIFEST] })),
      ecr.send(new BatchDeleteImageCommand({ repositoryName, imageIds: ids(1) })),
    ]) expect(await refusal(call)).toMatchObject({ name: 'RepositoryNotFoundException', message: expect.stringMatching(/rule: RepositoryNotFoundException/) });
  });

  test('DescribeImages maxResults must be an integer 1..1000 (InvalidParameterException)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO }).client();
    for (const maxResults of [0, 1001, 2.5]) {
      expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, maxResults }))))
        .toMatchObject({ name: 'InvalidParameterException', message: expect.stringMatching(/maxResults.*API_DescribeImages/) });
    }
  });

  test('DescribeImages pages hold maxResults images, 100 without it, and the last page has no nextToken', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(1500) }).client();
    const first = await ecr.send(new DescribeImagesCommand({ repositoryName: REPO, maxResults: 1000 }));
    expect(first.imageDetails).toHaveLength(1000);
    const last = await ecr.send(new DescribeImagesCommand({ repositoryName: REPO, maxResults: 1000, nextToken: first.nextToken }));
    expect([last.imageDetails!.length, last.nextToken]).toEqual([500, undefined]);
    const byDefault = await ecr.send(new DescribeImagesCommand({ repositoryName: REPO }));
    expect(byDefault.imageDetails).toHaveLength(100);
    expect(byDefault.nextToken).toEqual(expect.any(String));
  });

  test('DescribeImages imageIds cannot be combined with maxResults or nextToken (InvalidParameterException)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(1) }).client();
    expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: ids(1), maxResults: 10 }))))
      .toMatchObject({ name: 'InvalidParameterException' });
    expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: ids(1), nextToken: 'x' }))))
      .toMatchObject({ name: 'InvalidParameterException' });
  });

  test('DescribeImages imageIds holds 1..100 ids (InvalidParameterException)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(101) }).client();
    for (const n of [0, 101]) {
      expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: ids(n) }))))
        .toMatchObject({ name: 'InvalidParameterException', message: expect.stringMatching(/imageIds/) });
    }
    expect((await ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: ids(100) }))).imageDetails).toHaveLength(100);
  });

  test('DescribeImages of an image that is not there is ImageNotFoundException', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(1) }).client();
    expect(await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageDigest: digest('nope') }] }))))
      .toMatchObject({ name: 'ImageNotFoundException' });
  });

  test('DescribeImages nextToken is opaque: forged tokens and tokens of another query are refused (InvalidParameterException)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(300) }).client();
    const page = await ecr.send(new DescribeImagesCommand({ repositoryName: REPO }));
    const token = page.nextToken!;
    for (const input of [
      { repositoryName: REPO, nextToken: '100' },
      { repositoryName: REPO, nextToken: token, filter: { tagStatus: 'UNTAGGED' as const } },
    ]) expect(await refusal(ecr.send(new DescribeImagesCommand(input)))).toMatchObject({ name: 'InvalidParameterException' });
    // A token goes on with the query that produced it, page size free.
    const next = await ecr.send(new DescribeImagesCommand({ repositoryName: REPO, nextToken: token, maxResults: 1000 }));
    expect(next.imageDetails).toHaveLength(200);
  });

  test('DescribeImages filter.tagStatus is TAGGED, UNTAGGED or ANY (InvalidParameterException otherwise)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: [...manifests(2), { digest: digest('t'), pushedAt: T0, tags: ['v1'] }] }).client();
    const listed = async (tagStatus: string): Promise<number> =>
      (await ecr.send(new DescribeImagesCommand({ repositoryName: REPO, filter: { tagStatus: tagStatus as 'ANY' } }))).imageDetails!.length;
    expect([await listed('TAGGED'), await listed('UNTAGGED'), await listed('ANY')]).toEqual([1, 2, 3]);
    expect(await refusal(listed('SOME'))).toMatchObject({ name: 'InvalidParameterException', message: expect.stringMatching(/tagStatus/) });
  });

  test('DescribeImages lists ACTIVE images only unless filter.imageStatus says otherwise', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: [...manifests(2), { digest: digest('a'), pushedAt: T0, status: 'ARCHIVED' }] }).client();
    const listed = async (imageStatus?: string): Promise<number> => (await ecr.send(new DescribeImagesCommand({
      repositoryName: REPO, filter: imageStatus === undefined ? undefined : { imageStatus: imageStatus as 'ANY' },
    }))).imageDetails!.length;
    expect([await listed(), await listed('ARCHIVED'), await listed('ANY')]).toEqual([2, 1, 3]);
    expect(await refusal(listed('GONE'))).toMatchObject({ name: 'InvalidParameterException', message: expect.stringMatching(/imageStatus/) });
  });

  test('DescribeImages imageStatus ANY lists every status in one listing, with lastArchivedAt and lastActivatedAt', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: [
      { digest: digest('a'), pushedAt: T0, status: 'ARCHIVED', lastArchivedAt: T0 + 5 },
      { digest: digest('r'), pushedAt: T0, status: 'ACTIVATING', lastArchivedAt: T0 + 5 },
      { digest: digest('x'), pushedAt: T0, lastActivatedAt: T0 + 9 },
    ] }).client();
    const out = await ecr.send(new DescribeImagesCommand({ repositoryName: REPO, filter: { imageStatus: 'ANY' } }));
    expect(out.imageDetails!.map(d => [d.imageStatus, d.lastArchivedAt?.getTime(), d.lastActivatedAt?.getTime()])).toEqual([
      ['ARCHIVED', T0 + 5, undefined], ['ACTIVATING', T0 + 5, undefined], ['ACTIVE', undefined, T0 + 9],
    ]);
  });

  test('BatchGetImage of an archived or restoring image is undocumented (a pull of one fails with 404): the fake refuses to guess', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: [
      { digest: digest('a'), pushedAt: T0, status: 'ARCHIVED', mediaType: OCI_INDEX, children: [] },
      { digest: digest('r'), pushedAt: T0, status: 'ACTIVATING', mediaType: OCI_INDEX, children: [] },
    ] }).client();
    for (const imageDigest of [digest('a'), digest('r')]) {
      const call = ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: [{ imageDigest }], acceptedMediaTypes: INDEX_TYPES }));
      expect(await refusal(call))
        .toMatchObject({ name: 'FakeUndocumentedBehaviourError', message: expect.stringMatching(/cannot be pulled.*archive-image/) });
    }
  });

  test('BatchGetImage imageIds holds 1..100 ids (InvalidParameterException)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(101) }).client();
    for (const n of [0, 101]) {
      expect(await refusal(ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: ids(n), acceptedMediaTypes: [OCI_MANIFEST] }))))
        .toMatchObject({ name: 'InvalidParameterException', message: expect.stringMatching(/'imageIds'.*API_BatchGetImage/) });
    }
  });

  test('BatchGetImage acceptedMediaTypes holds 1..100 types (InvalidParameterException)', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(1) }).client();
    for (const acceptedMediaTypes of [[], Array(101).fill(OCI_MANIFEST)]) {
      expect(await refusal(ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: ids(1), acceptedMediaTypes }))))
        .toMatchObject({ name: 'InvalidParameterException', message: expect.stringMatching(/acceptedMediaTypes/) });
    }
  });

  test('BatchGetImage answers a missing image, an id without digest or tag, and a tag of another digest with per-image failures', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: [...manifests(1), { digest: digest('t'), pushedAt: T0, tags: ['v1'] }] }).client();
    const out = await ecr.send(new BatchGetImageCommand({
      repositoryName: REPO, acceptedMediaTypes: [OCI_MANIFEST],
      imageIds: [{ imageDigest: digest(0) }, { imageDigest: digest('nope') }, {}, { imageDigest: digest(0), imageTag: 'v1' }],
    }));
    expect(out.images!.map(i => i.imageId!.imageDigest)).toEqual([digest(0)]);
    expect(out.failures!.map(f => f.failureCode)).toEqual(['ImageNotFound', 'MissingDigestAndTag', 'ImageTagDoesNotMatchDigest']);
  });

  test('BatchGetImage of a manifest type outside acceptedMediaTypes is undocumented: the fake refuses to guess', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(1, { mediaType: OCI_INDEX, children: [] }) }).client();
    expect(await refusal(ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: ids(1), acceptedMediaTypes: [OCI_MANIFEST] }))))
      .toMatchObject({ name: 'FakeUndocumentedBehaviourError' });
    expect(await refusal(ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: ids(1) }))))
      .toMatchObject({ name: 'FakeUndocumentedBehaviourError' });
    const out = await ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: ids(1), acceptedMediaTypes: INDEX_TYPES }));
    expect(JSON.parse(out.images![0].imageManifest!)).toMatchObject({ mediaType: OCI_INDEX, manifests: [] });
  });

  test('BatchDeleteImage imageIds holds 1..100 ids (InvalidParameterException, in ECR\'s words)', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, images: manifests(101) });
    const ecr = fake.client();
    expect(await refusal(ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: ids(101) })))).toMatchObject({
      name: 'InvalidParameterException',
      message: expect.stringContaining('Invalid parameter at \'imageIds\' failed to satisfy constraint: \'Member must have length less than or equal to 100\''),
    });
    expect(await refusal(ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [] })))).toMatchObject({ name: 'InvalidParameterException' });
    expect(fake.images()).toHaveLength(101);
  });

  test('BatchDeleteImage of a digest that is not there is a per-image ImageNotFound failure, not an exception', async () => {
    const ecr = new FakeEcr({ repositoryName: REPO, images: manifests(1) }).client();
    const out = await ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageDigest: digest('nope') }, ...ids(1)] }));
    expect(out.failures!.map(f => [f.imageId!.imageDigest, f.failureCode])).toEqual([[digest('nope'), 'ImageNotFound']]);
    expect(out.imageIds).toEqual([{ imageDigest: digest(0) }]);
  });

  test('BatchDeleteImage of a manifest an index still references is ImageReferencedByManifestList, even with the index in the same call', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, images: [...manifests(1), { digest: digest('i'), pushedAt: T0, mediaType: OCI_INDEX, children: [digest(0)] }] });
    const ecr = fake.client();
    const together = await ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageDigest: digest('i') }, ...ids(1)] }));
    expect(together.imageIds).toEqual([{ imageDigest: digest('i') }]);
    expect(together.failures!.map(f => [f.imageId!.imageDigest, f.failureCode])).toEqual([[digest(0), 'ImageReferencedByManifestList']]);
    const after = await ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: ids(1) }));
    expect([after.imageIds, after.failures]).toEqual([[{ imageDigest: digest(0) }], []]);
  });

  test('BatchDeleteImage by tag removes only that tag while others remain; by digest removes the image and all its tags', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, images: [{ digest: digest(0), pushedAt: T0, tags: ['a', 'b'] }] });
    const ecr = fake.client();
    await ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'a' }] }));
    expect(fake.images().map(i => i.tags)).toEqual([['b']]);
    const out = await ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: ids(1) }));
    expect(out.imageIds).toEqual([{ imageDigest: digest(0), imageTag: 'b' }]);
    expect(fake.images()).toEqual([]);
  });

  test('scripted per-image faults must use a failure code the API reference lists', () => {
    const fake = new FakeEcr({ repositoryName: REPO });
    expect(() => fake.failImage('BatchDeleteImage', digest(0), 'KmsError', 'kms down')).not.toThrow();
    expect(() => fake.failImage('BatchDeleteImage', digest(0), 'DiskFull', 'made up')).toThrow(/not an ImageFailure code/);
  });

  test('every call is counted, refused ones too, and an operation the fake does not model is refused', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, recordRequests: false });
    const ecr = fake.client();
    await ecr.send(new DescribeImagesCommand({ repositoryName: REPO }));
    await refusal(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, maxResults: 0 })));
    expect(fake.callCount('DescribeImages')).toBe(2);
    expect(fake.requests).toEqual([]);
    expect(await refusal(ecr.send(new DescribeRepositoriesCommand({})))).toMatchObject({ name: 'FakeUndocumentedBehaviourError' });
  });
});

describe('strict CodeBuild fake', () => {
  test('ListBuildsForProject lists newest first by default, 100 ids a page, without a nextToken on the last page', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: builds(150) });
    const codebuild = fake.client();
    const first = await codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT }));
    expect(first.ids).toHaveLength(CODEBUILD_PAGE);
    expect(first.ids![0]).toBe(fake.idsNewestFirst()[0]);
    const second = await codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT, nextToken: first.nextToken }));
    expect([second.ids!.length, second.nextToken]).toEqual([50, undefined]);
    expect([...first.ids!, ...second.ids!]).toEqual(fake.idsNewestFirst());
    const numbers = (await codebuild.send(new BatchGetBuildsCommand({ ids: first.ids!.slice(0, 3) }))).builds!.map(b => b.buildNumber);
    expect(numbers).toEqual([150, 149, 148]);
  });

  test('ListBuildsForProject refuses sortOrder on a project with more than 100 builds (InvalidInputException)', async () => {
    const codebuild = new FakeCodeBuild({ projectName: PROJECT, builds: builds(101) }).client();
    for (const sortOrder of ['ASCENDING', 'DESCENDING'] as const) {
      expect(await refusal(codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT, sortOrder })))).toMatchObject({
        name: 'InvalidInputException', message: expect.stringMatching(/more than 100 builds.*API_ListBuildsForProject/),
      });
    }
  });

  test('ListBuildsForProject refuses sortOrder with a nextToken: "Sort order can\'t be specified when passing a nextToken"', async () => {
    const codebuild = new FakeCodeBuild({ projectName: PROJECT, builds: builds(150) }).client();
    const first = await codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT }));
    expect(await refusal(codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT, sortOrder: 'DESCENDING', nextToken: first.nextToken }))))
      .toMatchObject({ name: 'InvalidInputException', message: expect.stringContaining('Sort order can\'t be specified when passing a nextToken') });
  });

  test('ListBuildsForProject takes sortOrder ASCENDING or DESCENDING on a project of at most 100 builds, nothing else', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: builds(100) });
    const codebuild = fake.client();
    const ascending = await codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT, sortOrder: 'ASCENDING' }));
    expect(ascending.ids).toEqual([...fake.idsNewestFirst()].reverse());
    expect(await refusal(codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT, sortOrder: 'NEWEST' as 'ASCENDING' }))))
      .toMatchObject({ name: 'InvalidInputException' });
  });

  test('ListBuildsForProject of a project that does not exist is ResourceNotFoundException; an empty name is InvalidInputException', async () => {
    const codebuild = new FakeCodeBuild({ projectName: PROJECT }).client();
    expect(await refusal(codebuild.send(new ListBuildsForProjectCommand({ projectName: 'other' })))).toMatchObject({ name: 'ResourceNotFoundException' });
    expect(await refusal(codebuild.send(new ListBuildsForProjectCommand({ projectName: '' })))).toMatchObject({ name: 'InvalidInputException' });
  });

  test('ListBuildsForProject nextToken is opaque: forged tokens and tokens of another project are refused (InvalidInputException)', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: builds(150) });
    const codebuild = fake.client();
    expect(await refusal(codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT, nextToken: '100' }))))
      .toMatchObject({ name: 'InvalidInputException' });
    const other = new FakeCodeBuild({ projectName: 'other', builds: builds(150) });
    const token = (await other.client().send(new ListBuildsForProjectCommand({ projectName: 'other' }))).nextToken;
    expect(await refusal(codebuild.send(new ListBuildsForProjectCommand({ projectName: PROJECT, nextToken: token }))))
      .toMatchObject({ name: 'InvalidInputException' });
  });

  test('ListBuildsForProject of a project without builds is an empty list', async () => {
    const out = await new FakeCodeBuild({ projectName: PROJECT }).client().send(new ListBuildsForProjectCommand({ projectName: PROJECT }));
    expect([out.ids, out.nextToken]).toEqual([[], undefined]);
  });

  test('BatchGetBuilds takes 1..100 ids (InvalidInputException)', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: builds(101) });
    const codebuild = fake.client();
    expect(await refusal(codebuild.send(new BatchGetBuildsCommand({ ids: [] }))))
      .toMatchObject({ name: 'InvalidInputException', message: expect.stringContaining('The input build ID list cannot be empty.') });
    expect(await refusal(codebuild.send(new BatchGetBuildsCommand({ ids: fake.idsNewestFirst() }))))
      .toMatchObject({ name: 'InvalidInputException', message: expect.stringMatching(/less than or equal to 100/) });
    expect((await codebuild.send(new BatchGetBuildsCommand({ ids: fake.idsNewestFirst().slice(0, 100) }))).builds).toHaveLength(100);
  });

  test('BatchGetBuilds lists ids it cannot find in buildsNotFound', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: builds(1) });
    const out = await fake.client().send(new BatchGetBuildsCommand({ ids: [fake.idsNewestFirst()[0], `${PROJECT}:gone`] }));
    expect([out.builds!.length, out.buildsNotFound]).toEqual([1, [`${PROJECT}:gone`]]);
  });

  test('BatchGetBuilds reports a running build IN_PROGRESS, incomplete, without end time or exported variables (CB4, CB10)', async () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT, builds: [
      { startTime: T0, endTime: T0 + 60_000, buildStatus: 'FAILED' },
      { id: `${PROJECT}:running`, startTime: T0 + 120_000, sourceVersion: 'refs/heads/feature/x',
        environmentVariables: [{ name: 'CACHE_BRANCH', value: 'feature/x' }] },
    ] });
    const out = await fake.client().send(new BatchGetBuildsCommand({ ids: fake.idsNewestFirst() }));
    expect(out.builds!.map(b => [b.buildStatus, b.buildComplete, b.endTime?.getTime(), b.exportedEnvironmentVariables])).toEqual([
      ['IN_PROGRESS', false, undefined, undefined], ['FAILED', true, T0 + 60_000, undefined],
    ]);
    expect(out.builds![0]).toMatchObject({
      sourceVersion: 'refs/heads/feature/x', environment: { environmentVariables: [{ name: 'CACHE_BRANCH', value: 'feature/x', type: 'PLAINTEXT' }] },
    });
    // post_build ends: the status, the end time and the exports appear together.
    fake.finish(`${PROJECT}:running`, { endTime: T0 + 180_000, exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: 'main' }] });
    const done = (await fake.client().send(new BatchGetBuildsCommand({ ids: [`${PROJECT}:running`] }))).builds![0];
    expect([done.buildStatus, done.buildComplete, done.exportedEnvironmentVariables]).toEqual(['SUCCEEDED', true, [{ name: 'CACHE_REFS_READ', value: 'main' }]]);
  });

  test('a build CodeBuild cannot report is refused: exports while running, a final status without an end time, or the reverse', () => {
    const fake = new FakeCodeBuild({ projectName: PROJECT });
    expect(() => fake.add({ startTime: T0, exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: 'main' }] }))
      .toThrow(/running build .* exported variables: they are final only after post_build/);
    expect(() => fake.add({ startTime: T0, buildStatus: 'SUCCEEDED' })).toThrow(/end time exactly for the final statuses/);
    expect(() => fake.add({ startTime: T0, endTime: T0 + 1, buildStatus: 'IN_PROGRESS' })).toThrow(/end time exactly for the final statuses/);
  });

  test('an operation the fake does not model is refused', async () => {
    expect(await refusal(new FakeCodeBuild().client().send(new ListProjectsCommand({})))).toMatchObject({ name: 'FakeUndocumentedBehaviourError' });
  });
});
