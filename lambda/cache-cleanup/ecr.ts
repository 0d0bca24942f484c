/**
 * ECR adapter: reads the cache repository into planner input and deletes what the plan says. No decisions here.
 */
import {
  BatchDeleteImageCommand, BatchGetImageCommand, DescribeImagesCommand, ECRClient, ECRClientConfig, ImageDetail,
} from '@aws-sdk/client-ecr';
import { CacheImage, ImageStatus } from './plan';

export const DESCRIBE_IMAGES_PAGE_SIZE = 1000;
/** BatchGetImage and BatchDeleteImage take at most 100 image ids a call. */
export const ECR_BATCH_SIZE = 100;
export const INDEX_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];
/** Attempts per call, throttling included; adaptive mode also slows the client down after a throttle. */
export const MAX_ATTEMPTS = 8;

/** A client with adaptive retries: a cleanup of 100k images makes hundreds of calls and must ride out throttling. */
export function createEcrClient(config: ECRClientConfig = {}): ECRClient {
  return new ECRClient({ retryMode: 'adaptive', maxAttempts: MAX_ATTEMPTS, ...config });
}

/** An image id ECR could not read or delete, with ECR's code (or the SDK error name when the whole call failed). */
export interface ImageFailure {
  readonly digest: string;
  readonly code: string;
  readonly reason: string;
}

export interface RepositoryScan {
  readonly images: CacheImage[];
  /** Indexes whose manifest could not be read: their children are unknown to the planner. */
  readonly indexReadFailures: ImageFailure[];
}

export interface DeleteOutcome {
  readonly deleted: string[];
  /** Already gone when we asked (e.g. an overlapping run): not a failure, but no bytes reclaimed either. */
  readonly alreadyGone: string[];
  readonly failures: ImageFailure[];
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** ECR's imageStatus as the planner knows it. A status this code does not know is kept and never read, like a restore. */
function statusOf(detail: ImageDetail): ImageStatus {
  const status = detail.imageStatus ?? 'ACTIVE';
  return status === 'ACTIVE' || status === 'ARCHIVED' ? status : 'ACTIVATING';
}

/** Planner input from DescribeImages output; undefined for an entry without digest (ECR always sends one). */
export function toCacheImage(detail: ImageDetail): CacheImage | undefined {
  if (!detail.imageDigest) return undefined;
  return {
    digest: detail.imageDigest,
    tags: detail.imageTags ?? [],
    sizeBytes: detail.imageSizeInBytes ?? 0,
    pushedAt: detail.imagePushedAt?.getTime() ?? Infinity,
    lastPulledAt: detail.lastRecordedPullTime?.getTime(),
    isIndex: INDEX_MEDIA_TYPES.includes(detail.imageManifestMediaType ?? ''),
    status: statusOf(detail),
    lastArchivedAt: detail.lastArchivedAt?.getTime(),
    lastActivatedAt: detail.lastActivatedAt?.getTime(),
  };
}

/** The digests an index manifest references, or undefined when it is not a readable index. */
export function parseIndexChildren(manifest: string): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(manifest);
  } catch {
    return undefined;
  }
  const manifests = (parsed as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(manifests)) return undefined;
  const digests: string[] = [];
  for (const m of manifests) {
    const digest = (m as { digest?: unknown } | null)?.digest;
    if (typeof digest !== 'string') return undefined;
    digests.push(digest);
  }
  return digests;
}

/**
 * Every image of the repository, archived and restoring ones included, 1000 a page. Without a filter DescribeImages lists
 * ACTIVE images only (API_DescribeImagesFilter), and archived cache would never be counted or deleted; `imageStatus: ANY`
 * lists them in the same pages, so this costs no extra call.
 */
export async function describeImages(client: ECRClient, repositoryName: string): Promise<CacheImage[]> {
  const byDigest = new Map<string, CacheImage>();
  let nextToken: string | undefined;
  do {
    const page = await client.send(new DescribeImagesCommand({
      repositoryName, maxResults: DESCRIBE_IMAGES_PAGE_SIZE, nextToken, filter: { imageStatus: 'ANY' },
    }));
    for (const detail of page.imageDetails ?? []) {
      const image = toCacheImage(detail);
      // A digest listed twice (the repository changed while we paged) must not reach the planner twice.
      if (image) byDigest.set(image.digest, image);
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return [...byDigest.values()];
}

/**
 * The children of each index, read with BatchGetImage 100 at a time. Indexes it could not read are reported, not thrown: those
 * ECR lists in `failures`, those of a manifest that is no index, and every index of a call that failed as a whole after the
 * SDK's retries (with the error's name). The planner treats an unreadable index as one that may reference anything, so a
 * failed read can only make the run delete less, and the report and the IndexReadFailures metric say so.
 */
export async function readIndexChildren(
  client: ECRClient, repositoryName: string, indexDigests: readonly string[],
): Promise<{ children: Map<string, string[]>; failures: ImageFailure[] }> {
  const children = new Map<string, string[]>();
  const failures: ImageFailure[] = [];
  for (const batch of chunks(indexDigests, ECR_BATCH_SIZE)) {
    let out;
    try {
      out = await client.send(new BatchGetImageCommand({
        repositoryName,
        imageIds: batch.map(imageDigest => ({ imageDigest })),
        acceptedMediaTypes: [...INDEX_MEDIA_TYPES],
      }));
    } catch (e) {
      const error = e as Error;
      for (const digest of batch) failures.push({ digest, code: error.name || 'Error', reason: error.message });
      continue;
    }
    for (const image of out.images ?? []) {
      const digest = image.imageId?.imageDigest;
      const parsed = image.imageManifest === undefined ? undefined : parseIndexChildren(image.imageManifest);
      if (digest && parsed) children.set(digest, parsed);
    }
    const failed = new Set<string>();
    for (const f of out.failures ?? []) {
      const digest = f.imageId?.imageDigest ?? '';
      failed.add(digest);
      failures.push({ digest, code: f.failureCode ?? 'Unknown', reason: f.failureReason ?? '' });
    }
    for (const digest of batch) {
      if (!children.has(digest) && !failed.has(digest)) {
        failures.push({ digest, code: 'UnreadableManifest', reason: 'no index manifest in the BatchGetImage response' });
      }
    }
  }
  return { children, failures };
}

/**
 * The repository as the planner needs it: every image, and for each active index the digests it references. Archived and
 * restoring indexes are not read: they cannot be pulled ("Archived images cannot be pulled", archive-image.html; a restoring
 * image "cannot be retrieved until the restore completes"), and BatchGetImage is what a pull calls. They stay with unknown
 * children, which the planner knows how to treat.
 */
export async function scanRepository(client: ECRClient, repositoryName: string): Promise<RepositoryScan> {
  const listed = await describeImages(client, repositoryName);
  const indexes = listed.filter(i => i.isIndex && i.status === 'ACTIVE').map(i => i.digest);
  if (indexes.length === 0) return { images: listed, indexReadFailures: [] };
  const { children, failures } = await readIndexChildren(client, repositoryName, indexes);
  const images = listed.map(image => (image.isIndex ? { ...image, children: children.get(image.digest) } : image));
  return { images, indexReadFailures: failures };
}

/**
 * Deletes by digest, one BatchDeleteImage call per batch, in order (callers put indexes before their children).
 * Per-image failures, and whole calls that fail after the SDK's retries, are collected rather than thrown so that
 * one bad batch does not stop the others.
 */
export async function deleteImages(client: ECRClient, repositoryName: string, batches: readonly (readonly string[])[]): Promise<DeleteOutcome> {
  const deleted: string[] = [];
  const alreadyGone: string[] = [];
  const failures: ImageFailure[] = [];
  for (const batch of batches.flatMap(b => chunks(b, ECR_BATCH_SIZE))) {
    try {
      const out = await client.send(new BatchDeleteImageCommand({ repositoryName, imageIds: batch.map(imageDigest => ({ imageDigest })) }));
      for (const id of out.imageIds ?? []) if (id.imageDigest) deleted.push(id.imageDigest);
      for (const f of out.failures ?? []) {
        const digest = f.imageId?.imageDigest ?? '';
        if (f.failureCode === 'ImageNotFound') alreadyGone.push(digest);
        else failures.push({ digest, code: f.failureCode ?? 'Unknown', reason: f.failureReason ?? '' });
      }
    } catch (e) {
      const error = e as Error;
      for (const digest of batch) failures.push({ digest, code: error.name || 'Error', reason: error.message });
    }
  }
  return { deleted: [...new Set(deleted)], alreadyGone, failures };
}
