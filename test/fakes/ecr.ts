/**
 * A strict in-memory fake of one private ECR repository, for DescribeImages, BatchGetImage and BatchDeleteImage.
 *
 * Every rule below rejects what the ECR API reference says the service rejects, with the service's error name and a
 * message that cites the rule (STYLE.md rule 12). Where the reference is silent the fake refuses with
 * FakeUndocumentedBehaviourError rather than guess. Attach it to a real ECRClient with `attach()` (or make one with
 * `client()`); see test/fakes/fakes.test.ts for one test per rule.
 */
import {
  BatchDeleteImageRequest, BatchDeleteImageResponse, BatchGetImageRequest, BatchGetImageResponse, DescribeImagesRequest,
  DescribeImagesResponse, ECRClient, ECRClientConfig, ECRServiceException, Image, ImageDetail, ImageFailure, ImageFailureCode,
  ImageIdentifier, ImageNotFoundException, InvalidParameterException, RepositoryNotFoundException,
} from '@aws-sdk/client-ecr';
import { FakeService, FakeServiceOptions, FakeUndocumentedBehaviourError, TokenBook } from './service';

const API = 'https://docs.aws.amazon.com/AmazonECR/latest/APIReference';
export const ECR_DOCS = {
  describeImages: `${API}/API_DescribeImages.html`,
  describeImagesFilter: `${API}/API_DescribeImagesFilter.html`,
  batchGetImage: `${API}/API_BatchGetImage.html`,
  batchDeleteImage: `${API}/API_BatchDeleteImage.html`,
  imageFailure: `${API}/API_ImageFailure.html`,
  imageDetail: `${API}/API_ImageDetail.html`,
  /** "Archived images cannot be pulled. Requests to pull the archived image will fail with a 404 error." */
  archive: 'https://docs.aws.amazon.com/AmazonECR/latest/userguide/archive-image.html',
  /** ACTIVATING while a restore runs ("typically up to 20 minutes"); the image cannot be pulled until it completes. */
  restore: 'https://docs.aws.amazon.com/AmazonECR/latest/userguide/restore-image.html',
  /** The repositoryName constraints as the CLI reference prints them from the service model. */
  repositoryName: 'https://docs.aws.amazon.com/cli/latest/reference/ecr/batch-delete-image.html',
  /** ECR's wording for a violated length constraint, as users have quoted it from the service. */
  lengthErrorWording: 'https://github.com/awslabs/ecr-cleanup-lambda/issues/11',
} as const;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const INDEX_TYPES = new Set([OCI_INDEX, DOCKER_MANIFEST_LIST]);

export const DEFAULT_REGISTRY_ID = '123456789012';
/** ECR's maximum `maxResults` for DescribeImages, and its page size when `maxResults` is not sent. */
export const DESCRIBE_IMAGES_MAX_RESULTS = 1000;
export const DESCRIBE_IMAGES_DEFAULT_PAGE = 100;
/** BatchGetImage and BatchDeleteImage: imageIds (and acceptedMediaTypes) 1..100. */
export const ECR_BATCH_LIMIT = 100;

export type FakeImageStatus = 'ACTIVE' | 'ARCHIVED' | 'ACTIVATING';

/** One manifest in the fake repository. Times are epoch milliseconds. */
export interface FakeImage {
  readonly digest: string;
  readonly tags?: readonly string[];
  readonly sizeBytes?: number;
  readonly pushedAt: number;
  readonly lastPulledAt?: number;
  /** @default OCI_MANIFEST */
  readonly mediaType?: string;
  /** For an index: the digests of the manifests it references. */
  readonly children?: readonly string[];
  /** The manifest BatchGetImage returns. @default - generated from `mediaType` and `children` */
  readonly manifest?: string;
  /** @default 'ACTIVE' */
  readonly status?: FakeImageStatus;
  /** ImageDetail.lastArchivedAt: when the image last moved to the archive storage class. */
  readonly lastArchivedAt?: number;
  /** ImageDetail.lastActivatedAt: when the image was last restored from the archive. */
  readonly lastActivatedAt?: number;
}

interface Entry {
  readonly seq: number;
  image: FakeImage;
  tags: string[];
  deleted: boolean;
}

export interface FakeEcrOptions extends FakeServiceOptions {
  /** @default 'app-cache' */
  readonly repositoryName?: string;
  /** @default DEFAULT_REGISTRY_ID */
  readonly registryId?: string;
  readonly images?: readonly FakeImage[];
}

type EcrCommand = 'DescribeImages' | 'BatchGetImage' | 'BatchDeleteImage';

function invalidParameter(message: string, rule: string): InvalidParameterException {
  return new InvalidParameterException({ message: `${message} [rule: ${rule}]`, $metadata: { httpStatusCode: 400 } });
}

/** A service error without a modelled class (ThrottlingException, AccessDeniedException...), for scripted faults. */
export function ecrError(name: string, message: string, fault: 'client' | 'server' = 'client'): ECRServiceException {
  return new ECRServiceException({ name, $fault: fault, message, $metadata: { httpStatusCode: fault === 'client' ? 400 : 500 } });
}

const TAG_STATUS = ['TAGGED', 'UNTAGGED', 'ANY'];
const IMAGE_STATUS = ['ACTIVE', 'ARCHIVED', 'ACTIVATING', 'ANY'];
const FAILURE_CODES = new Set<string>(Object.values(ImageFailureCode));

export class FakeEcr extends FakeService {
  readonly repositoryName: string;
  readonly registryId: string;
  private readonly entries: Entry[] = [];
  private readonly byDigest = new Map<string, Entry>();
  private readonly byTag = new Map<string, Entry>();
  /** child digest → digests of the indexes (in the repository, any status) that reference it. */
  private readonly parents = new Map<string, Set<string>>();
  private readonly tokens = new TokenBook<number>();
  private readonly imageFaults = new Map<string, { code: string; reason: string }>();
  private nextSeq = 0;

  constructor(options: FakeEcrOptions = {}) {
    super('ECR', options);
    this.repositoryName = options.repositoryName ?? 'app-cache';
    this.registryId = options.registryId ?? DEFAULT_REGISTRY_ID;
    for (const image of options.images ?? []) this.put(image);
  }

  /** A real ECRClient (dummy region and credentials: nothing leaves the process) answered by this fake. */
  client(config: ECRClientConfig = {}): ECRClient {
    return this.attach(new ECRClient({ region: 'us-east-1', credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake' }, ...config }));
  }

  /** Adds (or replaces) a manifest, as a push would. */
  put(image: FakeImage): this {
    if (this.byDigest.has(image.digest)) this.remove(image.digest);
    const tags = [...new Set(image.tags ?? [])];
    const entry: Entry = { seq: this.nextSeq++, image, tags, deleted: false };
    for (const tag of tags) {
      // A tag names one manifest: pushing it elsewhere moves it, as a push of an existing tag does.
      const previous = this.byTag.get(tag);
      if (previous) previous.tags = previous.tags.filter(t => t !== tag);
      this.byTag.set(tag, entry);
    }
    this.entries.push(entry);
    this.byDigest.set(image.digest, entry);
    for (const child of image.children ?? []) {
      const set = this.parents.get(child) ?? new Set<string>();
      set.add(image.digest);
      this.parents.set(child, set);
    }
    return this;
  }

  has(digest: string): boolean {
    return this.byDigest.has(digest);
  }

  /** The manifests still in the repository, with their current tags. */
  images(): FakeImage[] {
    return [...this.byDigest.values()].map(e => ({ ...e.image, tags: [...e.tags] }));
  }

  /**
   * Scripts a per-image failure (a KMS outage...) for one digest in one command. Only failure codes the API reference
   * lists are accepted, so a scripted fault cannot invent an answer the service never gives.
   * Source: ImageFailure.failureCode valid values, https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageFailure.html
   */
  failImage(command: 'BatchGetImage' | 'BatchDeleteImage', digest: string, code: string, reason: string): this {
    if (!FAILURE_CODES.has(code)) throw new Error(`fake ECR: ${code} is not an ImageFailure code (${ECR_DOCS.imageFailure})`);
    this.imageFaults.set(`${command} ${digest}`, { code, reason });
    return this;
  }

  protected handlers(): Record<string, (input: unknown) => object> {
    return {
      DescribeImages: input => this.describeImages(input as DescribeImagesRequest),
      BatchGetImage: input => this.batchGetImage(input as BatchGetImageRequest),
      BatchDeleteImage: input => this.batchDeleteImage(input as BatchDeleteImageRequest),
    };
  }

  private remove(digest: string): void {
    const entry = this.byDigest.get(digest);
    if (!entry) return;
    entry.deleted = true;
    this.byDigest.delete(digest);
    for (const tag of entry.tags) if (this.byTag.get(tag) === entry) this.byTag.delete(tag);
    for (const child of entry.image.children ?? []) this.parents.get(child)?.delete(digest);
  }

  private checkRepository(command: EcrCommand, input: { repositoryName?: string; registryId?: string }): void {
    const name = input.repositoryName;
    // repositoryName: required, length 2..256, pattern. https://docs.aws.amazon.com/cli/latest/reference/ecr/batch-delete-image.html
    if (typeof name !== 'string' || name.length < 2 || name.length > 256
      || !/^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/.test(name)) {
      throw invalidParameter(`Invalid parameter at 'repositoryName' failed to satisfy constraint: length 2..256 and the repository name pattern`,
        `${command} repositoryName, ${ECR_DOCS.repositoryName}`);
    }
    // registryId: pattern [0-9]{12}. https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchDeleteImage.html
    if (input.registryId !== undefined && !/^[0-9]{12}$/.test(input.registryId)) {
      throw invalidParameter(`Invalid parameter at 'registryId' failed to satisfy constraint: pattern [0-9]{12}`, `${command} registryId, ${API}/API_${command}.html`);
    }
    // RepositoryNotFoundException: "The specified repository could not be found." (listed in each operation's Errors)
    if (name !== this.repositoryName || (input.registryId !== undefined && input.registryId !== this.registryId)) {
      throw new RepositoryNotFoundException({
        message: `The repository with name '${name}' does not exist in the registry with id '${input.registryId ?? this.registryId}' `
          + `[rule: RepositoryNotFoundException, ${API}/API_${command}.html]`,
        $metadata: { httpStatusCode: 400 },
      });
    }
  }

  /** Array length 1..max, with ECR's wording for a violated constraint. */
  private checkLength(command: EcrCommand, member: string, value: unknown, max: number, required: boolean): void {
    if (value === undefined && !required) return;
    // imageIds / acceptedMediaTypes: "Array Members: Minimum number of 1 item. Maximum number of 100 items."
    // Error wording: "InvalidParameterException: Invalid parameter at 'imageIds' failed to satisfy constraint:
    // 'Member must have length less than or equal to 100'" (https://github.com/awslabs/ecr-cleanup-lambda/issues/11)
    const source = `${command} ${member} 1..${max}, ${API}/API_${command}.html`;
    if (!Array.isArray(value)) throw invalidParameter(`Invalid parameter at '${member}' failed to satisfy constraint: 'Member must not be null'`, source);
    if (value.length < 1) throw invalidParameter(`Invalid parameter at '${member}' failed to satisfy constraint: 'Member must have length greater than or equal to 1'`, source);
    if (value.length > max) {
      throw invalidParameter(`Invalid parameter at '${member}' failed to satisfy constraint: 'Member must have length less than or equal to ${max}'`, source);
    }
  }

  private detail(entry: Entry): ImageDetail {
    const i = entry.image;
    // Fresh objects on every call, as deserialisation would make them: a caller cannot mutate the repository.
    return {
      registryId: this.registryId,
      repositoryName: this.repositoryName,
      imageDigest: i.digest,
      imageTags: entry.tags.length > 0 ? [...entry.tags] : undefined,
      imageSizeInBytes: i.sizeBytes,
      imagePushedAt: new Date(i.pushedAt),
      lastRecordedPullTime: i.lastPulledAt === undefined ? undefined : new Date(i.lastPulledAt),
      imageManifestMediaType: i.mediaType ?? OCI_MANIFEST,
      imageStatus: i.status ?? 'ACTIVE',
      lastArchivedAt: i.lastArchivedAt === undefined ? undefined : new Date(i.lastArchivedAt),
      lastActivatedAt: i.lastActivatedAt === undefined ? undefined : new Date(i.lastActivatedAt),
    };
  }

  describeImages(input: DescribeImagesRequest): DescribeImagesResponse {
    const rule = (what: string): string => `DescribeImages ${what}, ${ECR_DOCS.describeImages}`;
    this.checkRepository('DescribeImages', input);
    const { maxResults, nextToken, imageIds, filter } = input;
    // maxResults: "This value can be between 1 and 1000."
    if (maxResults !== undefined && (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > DESCRIBE_IMAGES_MAX_RESULTS)) {
      throw invalidParameter(`Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and 1000', got ${maxResults}`,
        rule('maxResults 1..1000'));
    }
    if (imageIds !== undefined) {
      // maxResults and nextToken: "This option cannot be used when you specify images with imageIds."
      if (maxResults !== undefined || nextToken !== undefined) {
        throw invalidParameter('maxResults and nextToken cannot be used when you specify images with imageIds', rule('imageIds excludes maxResults/nextToken'));
      }
      this.checkLength('DescribeImages', 'imageIds', imageIds, ECR_BATCH_LIMIT, false);
    }
    // filter.tagStatus: TAGGED | UNTAGGED | ANY; filter.imageStatus: ACTIVE | ARCHIVED | ACTIVATING | ANY.
    const tagStatus = filter?.tagStatus ?? 'ANY';
    const imageStatus = filter?.imageStatus ?? 'ACTIVE';
    if (!TAG_STATUS.includes(tagStatus)) {
      throw invalidParameter(`Invalid parameter at 'filter.tagStatus': ${tagStatus} is not one of ${TAG_STATUS.join(', ')}`,
        `DescribeImagesFilter tagStatus, ${ECR_DOCS.describeImagesFilter}`);
    }
    if (!IMAGE_STATUS.includes(imageStatus)) {
      throw invalidParameter(`Invalid parameter at 'filter.imageStatus': ${imageStatus} is not one of ${IMAGE_STATUS.join(', ')}`,
        `DescribeImagesFilter imageStatus, ${ECR_DOCS.describeImagesFilter}`);
    }
    // imageStatus: "If not specified, only images with ACTIVE status are returned." (DescribeImagesFilter)
    const matches = (e: Entry): boolean => (imageStatus === 'ANY' || (e.image.status ?? 'ACTIVE') === imageStatus)
      && (tagStatus === 'ANY' || (tagStatus === 'TAGGED') === (e.tags.length > 0));

    if (imageIds !== undefined) {
      const found = imageIds.map(id => this.lookup(id));
      const missing = found.findIndex(f => f.entry === undefined);
      if (missing >= 0) {
        // ImageNotFoundException: "The image requested does not exist in the specified repository." The reference does
        // not say whether the found ones are returned alongside; the fake answers the whole call with the exception.
        throw new ImageNotFoundException({
          message: `The image with imageId ${JSON.stringify(imageIds[missing])} does not exist within the repository [rule: ${rule('ImageNotFoundException')}]`,
          $metadata: { httpStatusCode: 400 },
        });
      }
      return { imageDetails: found.map(f => this.detail(f.entry!)).filter((_, k) => matches(found[k].entry!)) };
    }

    const query = JSON.stringify([this.repositoryName, tagStatus, imageStatus]);
    let after = -1;
    if (nextToken !== undefined) {
      const position = this.tokens.resolve('DescribeImages', query, nextToken);
      // nextToken: "The nextToken value returned from a previous paginated DescribeImages request" — only such a value.
      if (position === undefined) {
        throw invalidParameter('Invalid parameter at \'nextToken\': not a token returned by a previous DescribeImages call of this query',
          rule('nextToken'));
      }
      after = position;
    }
    // Without maxResults, "DescribeImages returns up to 100 results and a nextToken value, if applicable."
    const size = maxResults ?? DESCRIBE_IMAGES_DEFAULT_PAGE;
    const page: ImageDetail[] = [];
    let k = this.firstAfter(after);
    let last = after;
    for (; k < this.entries.length && page.length < size; k++) {
      const e = this.entries[k];
      if (e.deleted || !matches(e)) continue;
      page.push(this.detail(e));
      last = e.seq;
    }
    let more = false;
    for (; k < this.entries.length && !more; k++) more = !this.entries[k].deleted && matches(this.entries[k]);
    // nextToken: "This value is null when there are no more results to return."
    return { imageDetails: page, nextToken: more ? this.tokens.issue('DescribeImages', query, last) : undefined };
  }

  /** Index of the first entry with seq > `seq` (entries are in seq order). */
  private firstAfter(seq: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid].seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Resolves an ImageIdentifier, or the ImageFailure ECR lists for it. */
  private lookup(id: ImageIdentifier): { entry?: Entry; failure?: ImageFailure } {
    const failure = (failureCode: ImageFailureCode, failureReason: string): { failure: ImageFailure } =>
      ({ failure: { imageId: { ...id }, failureCode, failureReason } });
    // ImageIdentifier: "Images are specified with either an imageTag or imageDigest"; failure code MissingDigestAndTag.
    if (id.imageDigest === undefined && id.imageTag === undefined) return failure('MissingDigestAndTag', 'Invalid request parameters: both tag and digest cannot be null');
    const byTag = id.imageTag === undefined ? undefined : this.byTag.get(id.imageTag);
    if (id.imageDigest !== undefined) {
      const entry = this.byDigest.get(id.imageDigest);
      if (!entry) return failure('ImageNotFound', 'Requested image not found');
      // Both given and naming different manifests: failure code ImageTagDoesNotMatchDigest.
      if (id.imageTag !== undefined && byTag !== entry) return failure('ImageTagDoesNotMatchDigest', 'Invalid request parameters: image tag digest mismatch');
      return { entry };
    }
    return byTag ? { entry: byTag } : failure('ImageNotFound', 'Requested image not found');
  }

  private manifestOf(image: FakeImage): string {
    if (image.manifest !== undefined) return image.manifest;
    const mediaType = image.mediaType ?? OCI_MANIFEST;
    if (!INDEX_TYPES.has(mediaType)) return JSON.stringify({ schemaVersion: 2, mediaType, config: {}, layers: [] });
    // Descriptor sizes are the children's manifest lengths, which the fake does not model and nothing here reads.
    const manifests = (image.children ?? []).map(digest => ({
      mediaType: this.byDigest.get(digest)?.image.mediaType ?? OCI_MANIFEST, digest, size: 0,
    }));
    return JSON.stringify({ schemaVersion: 2, mediaType, manifests });
  }

  batchGetImage(input: BatchGetImageRequest): BatchGetImageResponse {
    this.checkRepository('BatchGetImage', input);
    this.checkLength('BatchGetImage', 'imageIds', input.imageIds, ECR_BATCH_LIMIT, true);
    this.checkLength('BatchGetImage', 'acceptedMediaTypes', input.acceptedMediaTypes, ECR_BATCH_LIMIT, false);
    const images: Image[] = [];
    const failures: ImageFailure[] = [];
    for (const id of input.imageIds!) {
      const { entry, failure } = this.lookup(id);
      if (failure) {
        failures.push(failure);
        continue;
      }
      const image = entry!.image;
      const fault = this.imageFaults.get(`BatchGetImage ${image.digest}`);
      if (fault) {
        failures.push({ imageId: { ...id }, failureCode: fault.code as ImageFailureCode, failureReason: fault.reason });
        continue;
      }
      // An archived image "cannot be pulled" (404), nor one being restored until the restore completes; BatchGetImage is what
      // a pull calls, and the reference does not say whether it answers with an exception or which ImageFailure code: refuse.
      if ((image.status ?? 'ACTIVE') !== 'ACTIVE') {
        throw new FakeUndocumentedBehaviourError(`fake ECR: BatchGetImage of a ${image.status} image (${image.digest}): archived and `
          + `restoring images cannot be pulled, and the API reference does not say what BatchGetImage answers (${ECR_DOCS.archive})`);
      }
      const mediaType = image.mediaType ?? OCI_MANIFEST;
      // The reference lists acceptedMediaTypes but not what ECR answers for a manifest of another type, nor which types it
      // assumes when the member is absent: refuse rather than guess.
      if (input.acceptedMediaTypes === undefined || !input.acceptedMediaTypes.includes(mediaType)) {
        throw new FakeUndocumentedBehaviourError(`fake ECR: BatchGetImage of a ${mediaType} manifest with acceptedMediaTypes `
          + `${JSON.stringify(input.acceptedMediaTypes)}: the API reference does not say what ECR returns (${ECR_DOCS.batchGetImage})`);
      }
      images.push({
        registryId: this.registryId, repositoryName: this.repositoryName, imageId: { ...id, imageDigest: image.digest },
        imageManifest: this.manifestOf(image), imageManifestMediaType: mediaType,
      });
    }
    return { images, failures };
  }

  batchDeleteImage(input: BatchDeleteImageRequest): BatchDeleteImageResponse {
    this.checkRepository('BatchDeleteImage', input);
    this.checkLength('BatchDeleteImage', 'imageIds', input.imageIds, ECR_BATCH_LIMIT, true);
    // Judged against the repository as it was before the call: the reference does not promise that ids inside one call
    // are applied in order, so an index and its child in the same call leave the child refused.
    // (Deletions are applied after the loop, so `parents` still describes the repository before the call.)
    const references = (digest: string): string | undefined => this.parents.get(digest)?.values().next().value;
    const imageIds: ImageIdentifier[] = [];
    const failures: ImageFailure[] = [];
    const deleteDigests = new Set<string>();
    for (const id of input.imageIds!) {
      const { entry, failure } = this.lookup(id);
      if (failure) {
        // Deleting a missing digest: failure code ImageNotFound, not an exception (ImageFailure, BatchDeleteImage).
        failures.push(failure);
        continue;
      }
      const digest = entry!.image.digest;
      const fault = this.imageFaults.get(`BatchDeleteImage ${digest}`);
      if (fault) {
        failures.push({ imageId: { ...id }, failureCode: fault.code as ImageFailureCode, failureReason: fault.reason });
        continue;
      }
      if (id.imageDigest === undefined && entry!.tags.length > 1) {
        // "You can remove a tag from an image by specifying the image's tag in your request. When you remove the last tag
        // from an image, the image is deleted from your repository."
        entry!.tags = entry!.tags.filter(t => t !== id.imageTag);
        this.byTag.delete(id.imageTag!);
        imageIds.push({ imageDigest: digest, imageTag: id.imageTag });
        continue;
      }
      const parent = references(digest);
      if (parent !== undefined) {
        // Failure code ImageReferencedByManifestList (ImageFailure): the manifest is still referenced by an index.
        failures.push({
          imageId: { ...id }, failureCode: 'ImageReferencedByManifestList',
          failureReason: `Requested image is referenced by manifest list ${parent} [rule: ImageReferencedByManifestList, ${ECR_DOCS.imageFailure}]`,
        });
        continue;
      }
      if (deleteDigests.has(digest)) continue;
      deleteDigests.add(digest);
      // "You can completely delete an image (and all of its tags) by specifying the image's digest in your request."
      const tags = entry!.tags;
      if (tags.length === 0) imageIds.push({ imageDigest: digest });
      for (const imageTag of tags) imageIds.push({ imageDigest: digest, imageTag });
    }
    for (const digest of deleteDigests) this.remove(digest);
    return { imageIds, failures };
  }
}
