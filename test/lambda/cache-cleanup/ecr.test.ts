import { ImageDetail } from '@aws-sdk/client-ecr';
import { deletionBatches } from '../../../lambda/cache-cleanup/delete-order';
import {
  deleteImages, describeImages, parseIndexChildren, readIndexChildren, scanRepository, toCacheImage,
} from '../../../lambda/cache-cleanup/ecr';
import { DOCKER_MANIFEST_LIST, ecrError, FakeEcr, FakeImage, OCI_INDEX, OCI_MANIFEST } from '../../fakes/ecr';
import { digestOf, image, NOW } from './fixtures';

const REPO = 'app-cache';

function detail(k: number, fields: Partial<ImageDetail> = {}): ImageDetail {
  return {
    imageDigest: digestOf(`d${k}`), imageTags: [], imageSizeInBytes: 10, imagePushedAt: new Date(NOW), imageManifestMediaType: OCI_MANIFEST,
    ...fields,
  };
}

function manifest(name: string, fields: Partial<Omit<FakeImage, 'digest'>> = {}): FakeImage {
  return { digest: digestOf(name), sizeBytes: 10, pushedAt: NOW, ...fields };
}

function indexManifest(children: string[]): string {
  const manifests = children.map(digest => ({ mediaType: OCI_MANIFEST, digest, size: 1 }));
  return JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
}

describe('describeImages', () => {
  test('pages through the repository 1000 images a call, following nextToken', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, images: Array.from({ length: 2500 }, (_, k) => manifest(`d${k}`)) });
    const images = await describeImages(fake.client(), REPO);
    expect(images).toHaveLength(2500);
    const inputs = fake.inputsOf('DescribeImages');
    expect(inputs).toHaveLength(3);
    // imageStatus ANY: without it DescribeImages lists ACTIVE images only, and archived cache would never be seen (ECR9).
    expect(inputs[0]).toEqual({ repositoryName: REPO, maxResults: 1000, nextToken: undefined, filter: { imageStatus: 'ANY' } });
    expect(inputs[2]).toEqual({ repositoryName: REPO, maxResults: 1000, nextToken: expect.any(String), filter: { imageStatus: 'ANY' } });
  });

  test('a digest listed on two pages reaches the planner once', async () => {
    // Page 1 ends at d999; d0 pushed again with a new tag before page 2 is listed again there, after d1000.
    const fake = new FakeEcr({ repositoryName: REPO, images: Array.from({ length: 1001 }, (_, k) => manifest(`d${k}`)) })
      .beforeCall('DescribeImages', 2, () => fake.put(manifest('d0', { tags: ['late'] })));
    const images = await describeImages(fake.client(), REPO);
    expect(fake.callCount('DescribeImages')).toBe(2);
    expect(images).toHaveLength(1001);
    expect(images.find(i => i.digest === digestOf('d0'))!.tags).toEqual(['late']);
  });

  test('a failing DescribeImages call is thrown, not swallowed', async () => {
    const fake = new FakeEcr({ repositoryName: 'other-repository' });
    await expect(describeImages(fake.client(), REPO)).rejects.toMatchObject({ name: 'RepositoryNotFoundException' });
  });
});

describe('toCacheImage and parseIndexChildren', () => {
  test('convert ECR fields into planner input', () => {
    expect(toCacheImage(detail(1, { imageTags: ['main'], lastRecordedPullTime: new Date(NOW - 5), imageManifestMediaType: OCI_INDEX }))).toEqual({
      digest: digestOf('d1'), tags: ['main'], sizeBytes: 10, pushedAt: NOW, lastPulledAt: NOW - 5, isIndex: true,
      status: 'ACTIVE', lastArchivedAt: undefined, lastActivatedAt: undefined,
    });
    const archived = toCacheImage(detail(2, { imageStatus: 'ARCHIVED', lastArchivedAt: new Date(NOW - 7), lastActivatedAt: new Date(NOW - 9) }))!;
    expect([archived.status, archived.lastArchivedAt, archived.lastActivatedAt]).toEqual(['ARCHIVED', NOW - 7, NOW - 9]);
    // A status this code does not know is treated like a restore: kept, and never read.
    expect(toCacheImage(detail(3, { imageStatus: 'DEEP_FREEZE' as 'ACTIVE' }))!.status).toBe('ACTIVATING');
    expect(toCacheImage(detail(1, { imageManifestMediaType: DOCKER_MANIFEST_LIST }))!.isIndex).toBe(true);
    expect(toCacheImage(detail(1, { imagePushedAt: undefined }))!.pushedAt).toBe(Infinity);
    expect(toCacheImage({ imageTags: ['x'] })).toBeUndefined();
  });

  test('read the children of an index manifest, and nothing from anything else', () => {
    expect(parseIndexChildren(indexManifest(['sha256:a', 'sha256:b']))).toEqual(['sha256:a', 'sha256:b']);
    expect(parseIndexChildren('{"schemaVersion":2,"layers":[]}')).toBeUndefined();
    expect(parseIndexChildren('{"manifests":[{"size":1}]}')).toBeUndefined();
    expect(parseIndexChildren('not json')).toBeUndefined();
  });
});

describe('readIndexChildren and scanRepository', () => {
  test('read index manifests 100 a call, asking for index media types only', async () => {
    const children = Array.from({ length: 250 }, (_, k) => manifest(`c${k}`));
    const indexes = children.map((c, k) => manifest(`i${k}`, { mediaType: OCI_INDEX, children: [c.digest] }));
    const fake = new FakeEcr({ repositoryName: REPO, images: [...children, ...indexes] });
    const digests = indexes.map(i => i.digest);
    const { children: read, failures } = await readIndexChildren(fake.client(), REPO, digests);
    const inputs = fake.inputsOf('BatchGetImage');
    expect(inputs.map(i => (i.imageIds as unknown[]).length)).toEqual([100, 100, 50]);
    for (const input of inputs) expect(input.acceptedMediaTypes).toEqual([OCI_INDEX, DOCKER_MANIFEST_LIST]);
    expect(read.get(digests[249])).toEqual([children[249].digest]);
    expect(failures).toEqual([]);
  });

  test('report indexes ECR could not return or whose manifest is unreadable, and leave their children unknown', async () => {
    const fake = new FakeEcr({
      repositoryName: REPO,
      images: [
        manifest('d1', { mediaType: OCI_INDEX, children: [digestOf('d4')] }), manifest('d2', { mediaType: OCI_INDEX }),
        manifest('d3', { mediaType: OCI_INDEX, manifest: '{' }), manifest('d4'),
      ],
    }).failImage('BatchGetImage', digestOf('d2'), 'KmsError', 'kms unavailable');
    const scan = await scanRepository(fake.client(), REPO);
    expect(scan.images.map(i => i.children)).toEqual([[digestOf('d4')], undefined, undefined, undefined]);
    expect(scan.indexReadFailures.map(f => [f.digest, f.code])).toEqual([[digestOf('d2'), 'KmsError'], [digestOf('d3'), 'UnreadableManifest']]);
  });

  test('a whole BatchGetImage call that fails after the SDK\'s retries is reported for each index of the call, not thrown', async () => {
    const indexes = Array.from({ length: 150 }, (_, k) => manifest(`i${k}`, { mediaType: OCI_INDEX, children: [] }));
    const fake = new FakeEcr({ repositoryName: REPO, images: indexes }).failCall('BatchGetImage', ecrError('ThrottlingException', 'Rate exceeded'), 2);
    const { children, failures } = await readIndexChildren(fake.client(), REPO, indexes.map(i => i.digest));
    expect(children.size).toBe(100);
    expect(failures).toHaveLength(50);
    expect(failures[0]).toEqual({ digest: indexes[100].digest, code: 'ThrottlingException', reason: 'Rate exceeded' });
  });

  test('an index deleted between the listing and the read is reported as ImageNotFound', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, images: [manifest('x')] });
    const { failures } = await readIndexChildren(fake.client(), REPO, [digestOf('gone')]);
    expect(failures.map(f => [f.digest, f.code])).toEqual([[digestOf('gone'), 'ImageNotFound']]);
  });

  test('make no BatchGetImage call when the repository holds no index', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, images: [manifest('d1'), manifest('d2')] });
    await scanRepository(fake.client(), REPO);
    expect(fake.callCount('BatchGetImage')).toBe(0);
  });
});

describe('deleteImages', () => {
  test('deletes in calls of at most 100 ids, by digest, in the given order', async () => {
    const digests = Array.from({ length: 250 }, (_, k) => digestOf(`x${k}`));
    const fake = new FakeEcr({ repositoryName: REPO, images: digests.map(digest => ({ digest, pushedAt: NOW })) });
    const outcome = await deleteImages(fake.client(), REPO, deletionBatches(digests.map(d => ({ ...image('x'), digest: d }))));
    const inputs = fake.inputsOf('BatchDeleteImage');
    expect(inputs.map(i => (i.imageIds as unknown[]).length)).toEqual([100, 100, 50]);
    for (const input of inputs) expect(input.repositoryName).toBe(REPO);
    expect((inputs[0].imageIds as { imageDigest: string }[])[0]).toEqual({ imageDigest: digests[0] });
    expect(outcome.deleted).toHaveLength(250);
    expect(outcome.failures).toEqual([]);
    expect(fake.images()).toEqual([]);
  });

  test('an over-long batch is still split into calls of 100', async () => {
    const digests = Array.from({ length: 150 }, (_, k) => digestOf(`y${k}`));
    const fake = new FakeEcr({ repositoryName: REPO, images: digests.map(digest => ({ digest, pushedAt: NOW })) });
    await deleteImages(fake.client(), REPO, [digests]);
    expect(fake.inputsOf('BatchDeleteImage').map(i => (i.imageIds as unknown[]).length)).toEqual([100, 50]);
  });

  test('a manifest with several tags is reported deleted once', async () => {
    const fake = new FakeEcr({ repositoryName: REPO, images: [manifest('t', { tags: ['a', 'b'] })] });
    const outcome = await deleteImages(fake.client(), REPO, [[digestOf('t')]]);
    expect(outcome.deleted).toEqual([digestOf('t')]);
  });

  test('collects per-image failures and whole failed calls, counts ImageNotFound as already gone, and carries on', async () => {
    const [a, b, c, d, e, f, idx] = ['a', 'b', 'c', 'd', 'e', 'f', 'i'].map(digestOf);
    const fake = new FakeEcr({
      repositoryName: REPO,
      // b is still referenced by the index i, which stays; c was never there (already deleted by an overlapping run).
      images: [manifest('a'), manifest('b'), manifest('d'), manifest('e'), manifest('f'), manifest('i', { mediaType: OCI_INDEX, children: [b] })],
    }).failCall('BatchDeleteImage', ecrError('ThrottlingException', 'Rate exceeded'), 2);
    const outcome = await deleteImages(fake.client(), REPO, [[a, b, c], [d, e], [f]]);
    expect(outcome.deleted).toEqual([a, f]);
    expect(outcome.alreadyGone).toEqual([c]);
    expect(outcome.failures).toEqual([
      { digest: b, code: 'ImageReferencedByManifestList', reason: expect.stringContaining(idx) },
      { digest: d, code: 'ThrottlingException', reason: 'Rate exceeded' },
      { digest: e, code: 'ThrottlingException', reason: 'Rate exceeded' },
    ]);
    expect(fake.has(b) && fake.has(d) && fake.has(e) && fake.has(idx)).toBe(true);
  });

  test('an index and its child in one call: ECR refuses the child, so the child goes in a later call', async () => {
    const idx = manifest('i', { mediaType: OCI_INDEX, children: [digestOf('c')] });
    const together = new FakeEcr({ repositoryName: REPO, images: [manifest('c'), idx] });
    const refused = await deleteImages(together.client(), REPO, [[idx.digest, digestOf('c')]]);
    expect(refused.failures.map(f => f.code)).toEqual(['ImageReferencedByManifestList']);
    const ordered = new FakeEcr({ repositoryName: REPO, images: [manifest('c'), idx] });
    const batches = deletionBatches([{ ...image('c') }, { ...image('i'), isIndex: true, children: [digestOf('c')] }]);
    const outcome = await deleteImages(ordered.client(), REPO, batches);
    expect(outcome.failures).toEqual([]);
    expect(ordered.images()).toEqual([]);
  });
});
