/** The strategies a build script can be rendered for. */
export type StrategyName = 'registry' | 'inline' | 'buildah';

/**
 * What a strategy contributes to the script: bash functions with a fixed contract.
 *
 * - `cib_engine_setup`: checks the engine and prepares a builder; runs in the install phase.
 * - `cib_engine_login HOST`: logs the engine in to a registry, password on stdin.
 * - `cib_engine_prepare` (optional): runs in the build step before the snapshot and the build (the registry strategy picks
 *   its builder there, so the snapshot knows whether the build falls back to inline).
 * - `cib_engine_build`: builds and pushes `$IMAGE_URI` reading cache from `$CACHE_READ_TAGS`, writes the
 *   engine log to `$CIB_WORK_DIR/build.log` and sets `IMAGE_DIGEST`; an error fails the build.
 * - `cib_engine_cache_push`: exports the cache to `$CACHE_WRITE_TAG`; a non-zero status only warns.
 * - `cib_engine_cache_snapshot` / `cib_engine_cache_bytes`: before the export, note what the cache repository
 *   holds; after it, print how many bytes the export added (0 when unknown).
 * - `cib_engine_written_refs`: the refs the export wrote, one a line (the branch tag, or buildah's step tags).
 */
export interface EngineScript {
  readonly strategy: StrategyName;
  /** Which step parser reads the build log. */
  readonly logFormat: 'buildkit' | 'buildah';
  /** Bash function definitions implementing the contract above. */
  readonly functions: string;
}
