import {
  BatchDeleteImageCommand, BatchGetImageCommand, DescribeImagesCommand, ECRClient, ImageDetail,
} from '@aws-sdk/client-ecr';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { deletionBatches } from '../../../lambda/cache-cleanup/delete-order';
import {
  deleteImages, describeImages, parseIndexChildren, readIndexChildren, scanRepository, toCacheImage,
} from '../../../lambda/cache-cleanup/ecr';
import { digestOf, image, NOW } from './fixtures';

const REPO = 'app-cache';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const ecr = mockClient(ECRClient);

function detail(k: number, fields: Partial<ImageDetail> = {}): ImageDetail {
  return {
    imageDigest: digestOf(`d${k}`), imageTags: [], imageSizeInBytes: 10, imagePushedAt: new Date(NOW), imageManifestMediaType: OCI_MANIFEST,
    ...fields,
  };
}

function indexManifest(children: string[]): string {
  const manifests = children.map(digest => ({ mediaType: OCI_MANIFEST, digest, size: 1 }));
  return JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
}

beforeEach(() => {
  ecr.reset();
});

describe('describeImages', () => {
  test('pages through the repository 1000 images a call, following nextToken', async () => {
    const all = Array.from({ length: 2500 }, (_, k) => detail(k));
    ecr.on(DescribeImagesCommand)
      .resolvesOnce({ imageDetails: all.slice(0, 1000), nextToken: 't1' })
      .resolvesOnce({ imageDetails: all.slice(1000, 2000), nextToken: 't2' })
      .resolvesOnce({ imageDetails: all.slice(2000) });
    const images = await describeImages(new ECRClient({}), REPO);
    expect(images).toHaveLength(2500);
    expect(ecr).toHaveReceivedCommandTimes(DescribeImagesCommand, 3);
    expect(ecr).toHaveReceivedNthCommandWith(1, DescribeImagesCommand, { repositoryName: REPO, maxResults: 1000, nextToken: undefined });
    expect(ecr).toHaveReceivedNthCommandWith(3, DescribeImagesCommand, { repositoryName: REPO, maxResults: 1000, nextToken: 't2' });
  });

  test('a digest listed on two pages reaches the planner once', async () => {
    ecr.on(DescribeImagesCommand)
      .resolvesOnce({ imageDetails: [detail(1), detail(2)], nextToken: 't' })
      .resolvesOnce({ imageDetails: [detail(2, { imageTags: ['late'] })] });
    const images = await describeImages(new ECRClient({}), REPO);
    expect(images.map(i => i.tags)).toEqual([[], ['late']]);
  });

  test('a failing DescribeImages call is thrown, not swallowed', async () => {
    ecr.on(DescribeImagesCommand).rejects(Object.assign(new Error('no such repository'), { name: 'RepositoryNotFoundException' }));
    await expect(describeImages(new ECRClient({}), REPO)).rejects.toThrow(/no such repository/);
  });
});

describe('toCacheImage and parseIndexChildren', () => {
  test('convert ECR fields into planner input', () => {
    expect(toCacheImage(detail(1, { imageTags: ['main'], lastRecordedPullTime: new Date(NOW - 5), imageManifestMediaType: OCI_INDEX }))).toEqual({
      digest: digestOf('d1'), tags: ['main'], sizeBytes: 10, pushedAt: NOW, lastPulledAt: NOW - 5, isIndex: true,
    });
    expect(toCacheImage(detail(1, { imageManifestMediaType: 'application/vnd.docker.distribution.manifest.list.v2+json' }))!.isIndex).toBe(true);
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
    const digests = Array.from({ length: 250 }, (_, k) => digestOf(`i${k}`));
    ecr.on(BatchGetImageCommand).callsFake(input => ({
      images: input.imageIds.map((id: { imageDigest: string }) => ({ imageId: id, imageManifest: indexManifest([`${id.imageDigest}-child`]) })),
    }));
    const { children, failures } = await readIndexChildren(new ECRClient({}), REPO, digests);
    expect(ecr).toHaveReceivedCommandTimes(BatchGetImageCommand, 3);
    expect(ecr.commandCalls(BatchGetImageCommand).map(c => c.args[0].input.imageIds!.length)).toEqual([100, 100, 50]);
    expect(ecr).toHaveReceivedCommandWith(BatchGetImageCommand, {
      acceptedMediaTypes: [OCI_INDEX, 'application/vnd.docker.distribution.manifest.list.v2+json'],
    });
    expect(children.get(digests[249])).toEqual([`${digests[249]}-child`]);
    expect(failures).toEqual([]);
  });

  test('report indexes ECR could not return or whose manifest is unreadable, and leave their children unknown', async () => {
    ecr.on(DescribeImagesCommand).resolves({
      imageDetails: [detail(1, { imageManifestMediaType: OCI_INDEX }), detail(2, { imageManifestMediaType: OCI_INDEX }),
        detail(3, { imageManifestMediaType: OCI_INDEX }), detail(4)],
    });
    ecr.on(BatchGetImageCommand).resolves({
      images: [
        { imageId: { imageDigest: digestOf('d1') }, imageManifest: indexManifest([digestOf('d4')]) },
        { imageId: { imageDigest: digestOf('d3') }, imageManifest: '{' },
      ],
      failures: [{ imageId: { imageDigest: digestOf('d2') }, failureCode: 'ImageNotFound', failureReason: 'gone' }],
    });
    const scan = await scanRepository(new ECRClient({}), REPO);
    expect(scan.images.map(i => i.children)).toEqual([[digestOf('d4')], undefined, undefined, undefined]);
    expect(scan.indexReadFailures.map(f => [f.digest, f.code])).toEqual([[digestOf('d2'), 'ImageNotFound'], [digestOf('d3'), 'UnreadableManifest']]);
  });

  test('make no BatchGetImage call when the repository holds no index', async () => {
    ecr.on(DescribeImagesCommand).resolves({ imageDetails: [detail(1), detail(2)] });
    await scanRepository(new ECRClient({}), REPO);
    expect(ecr).toHaveReceivedCommandTimes(BatchGetImageCommand, 0);
  });
});

describe('deleteImages', () => {
  test('deletes in calls of at most 100 ids, by digest, in the given order', async () => {
    const digests = Array.from({ length: 250 }, (_, k) => digestOf(`x${k}`));
    ecr.on(BatchDeleteImageCommand).callsFake(input => ({ imageIds: input.imageIds }));
    const outcome = await deleteImages(new ECRClient({}), REPO, deletionBatches(digests.map(d => ({ ...image('x'), digest: d }))));
    expect(ecr.commandCalls(BatchDeleteImageCommand).map(c => c.args[0].input.imageIds!.length)).toEqual([100, 100, 50]);
    expect(ecr).toHaveReceivedCommandWith(BatchDeleteImageCommand, { repositoryName: REPO });
    expect(outcome.deleted).toHaveLength(250);
    expect(outcome.failures).toEqual([]);
  });

  test('an over-long batch is still split into calls of 100', async () => {
    ecr.on(BatchDeleteImageCommand).callsFake(input => ({ imageIds: input.imageIds }));
    await deleteImages(new ECRClient({}), REPO, [Array.from({ length: 150 }, (_, k) => digestOf(`y${k}`))]);
    expect(ecr.commandCalls(BatchDeleteImageCommand).map(c => c.args[0].input.imageIds!.length)).toEqual([100, 50]);
  });

  test('collects per-image failures and whole failed calls, counts ImageNotFound as already gone, and carries on', async () => {
    ecr.on(BatchDeleteImageCommand)
      .resolvesOnce({
        imageIds: [{ imageDigest: 'sha256:a' }],
        failures: [
          { imageId: { imageDigest: 'sha256:b' }, failureCode: 'ImageReferencedByManifestList', failureReason: 'referenced by sha256:i' },
          { imageId: { imageDigest: 'sha256:c' }, failureCode: 'ImageNotFound', failureReason: 'not found' },
        ],
      })
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .resolvesOnce({ imageIds: [{ imageDigest: 'sha256:f' }] });
    const outcome = await deleteImages(new ECRClient({}), REPO, [['sha256:a', 'sha256:b', 'sha256:c'], ['sha256:d', 'sha256:e'], ['sha256:f']]);
    expect(outcome.deleted).toEqual(['sha256:a', 'sha256:f']);
    expect(outcome.alreadyGone).toEqual(['sha256:c']);
    expect(outcome.failures).toEqual([
      { digest: 'sha256:b', code: 'ImageReferencedByManifestList', reason: 'referenced by sha256:i' },
      { digest: 'sha256:d', code: 'ThrottlingException', reason: 'Rate exceeded' },
      { digest: 'sha256:e', code: 'ThrottlingException', reason: 'Rate exceeded' },
    ]);
  });
});
