import { DEFAULT_BUILDKIT_IMAGE } from './build-script/build-script';
import { StrategyName } from './build-script/engine';

/** The engine family a strategy builds with. */
export enum CacheStrategyKind {
  /** `docker buildx build` with registry cache in the cache repository. */
  REGISTRY = 'registry',
  /** `docker build` with BuildKit inline cache, for engines without buildx. */
  INLINE = 'inline',
  /** `buildah build --layers` with `--cache-from/--cache-to`. */
  BUILDAH = 'buildah',
}

/** How the registry strategy compresses the layers its cache export writes. */
export enum CacheCompression {
  /**
   * zstd for the layers the cache export compresses first (those only the cache holds: the stages the image is not built on);
   * the app image is pushed gzip. Only BuildKit reads the cache repository, and it unpacks zstd several times faster.
   */
  ZSTD = 'zstd',
  /** gzip, as BuildKit's default; the app image is pushed as BuildKit makes it. */
  GZIP = 'gzip',
}

/** Options for {@link CacheStrategy.registry}. */
export interface RegistryCacheOptions {
  /**
   * BuildKit image for the docker-container builder that is created where the default builder cannot
   * export registry cache (e.g. CodeBuild standard:7.0: Docker 23, buildx 0.11). Docker Hub rate-limits
   * anonymous pulls: point this at a mirror in ECR for production builds.
   * @default 'moby/buildkit:buildx-stable-1'
   */
  readonly buildkitImage?: string;

  /**
   * Compression of the layers the cache export writes first: the layers of the stages the image is not built on (a `deps`
   * stage's `npm ci`, a `build` stage's compiler output). Layers the app image has keep the gzip its push gave them, and the
   * app image is always pushed gzip, so every runtime can pull it: a layer in its chain that is not gzip (a zstd base's, a
   * zstd layer of the cache the image is now built on) is recompressed on every build. Only BuildKit reads the cache
   * repository. Choose `CacheCompression.GZIP` for a zstd base image, or for images of a group whose side stages are
   * another image's base.
   * @default CacheCompression.ZSTD
   */
  readonly cacheCompression?: CacheCompression;
}

/**
 * How the image build reuses the remote layer cache. Pick one with the static factories.
 */
export abstract class CacheStrategy {
  /** `docker buildx build` with `--cache-from/--cache-to type=registry` (mode=max, image manifest, OCI media types). */
  public static registry(options: RegistryCacheOptions = {}): CacheStrategy {
    const image = options.buildkitImage;
    if (image !== undefined && !/^\S+$/.test(image)) {
      throw new Error(`CacheStrategy.registry: buildkitImage must be an image reference, got '${image}'`);
    }
    const compression = options.cacheCompression;
    if (compression !== undefined && !Object.values(CacheCompression).includes(compression)) {
      throw new Error(`CacheStrategy.registry: cacheCompression must be one of ${Object.values(CacheCompression).join(', ')}, got '${compression}'`);
    }
    return new ConcreteStrategy(CacheStrategyKind.REGISTRY, options.buildkitImage ?? DEFAULT_BUILDKIT_IMAGE, compression ?? CacheCompression.ZSTD);
  }

  /** Plain `docker build` with inline cache, for engines without buildx; pre-pulls the cache so that it stays complete on docker 20.10. */
  public static inline(): CacheStrategy {
    return new ConcreteStrategy(CacheStrategyKind.INLINE);
  }

  /** `buildah build --layers --cache-from/--cache-to` on the cache repository. */
  public static buildah(): CacheStrategy {
    return new ConcreteStrategy(CacheStrategyKind.BUILDAH);
  }

  /** The engine family. */
  public abstract readonly kind: CacheStrategyKind;

  /** BuildKit image of the docker-container builder (registry strategy only). */
  public abstract readonly buildkitImage?: string;

  /** Compression of the layers the cache export writes first (registry strategy only). */
  public abstract readonly cacheCompression?: CacheCompression;

  protected constructor() {}

  /** The strategy name the build script renders. @internal */
  public get _scriptStrategy(): StrategyName {
    return this.kind;
  }
}

class ConcreteStrategy extends CacheStrategy {
  constructor(public readonly kind: CacheStrategyKind, public readonly buildkitImage?: string, public readonly cacheCompression?: CacheCompression) {
    super();
  }
}
