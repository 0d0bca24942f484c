import fc from 'fast-check';
import { ResolvedCleanupPolicy } from '../../../lambda/cache-cleanup/contract';
import { CacheImage, ImageStatus } from '../../../lambda/cache-cleanup/plan';
import { BuildUsage, StepLink } from '../../../lambda/cache-cleanup/usage';
import { DAY, digestOf, HOUR, NOW, policy, stepTag } from './fixtures';

/** Tags a generated repository draws from: the default branch's, feature branches', buildah step tags. */
export const TAG_POOL = ['main', 'feat-a', 'feat-b', 'feat-c', 'fix-9c0ffee1', 'fix-2', stepTag('1'), stepTag('2'), stepTag('3'), stepTag('4')];
/** The buildah chain the step tags of the pool form, base first. */
const STEP_CHAIN = [stepTag('1'), stepTag('2'), stepTag('3'), stepTag('4')];

const time = fc.integer({ min: -40 * 24, max: 0 }).map(h => NOW + h * HOUR);

const imageShape = fc.record({
  tags: fc.uniqueArray(fc.integer({ min: 0, max: TAG_POOL.length - 1 }), { maxLength: 2 }),
  sizeBytes: fc.integer({ min: 0, max: 2000 }),
  pushedAt: time,
  lastPulledAt: fc.option(time, { nil: undefined }),
  indexWeight: fc.integer({ min: 0, max: 9 }),
  children: fc.uniqueArray(fc.nat(), { maxLength: 3 }),
  unknownChildren: fc.integer({ min: 0, max: 9 }),
  // About one image in ten archived (at some time within 200 days), one in twenty being restored.
  statusWeight: fc.integer({ min: 0, max: 19 }),
  archivedAt: fc.integer({ min: 0, max: 200 * 24 }).map(h => NOW - h * HOUR),
  activatedAt: fc.option(time, { nil: undefined }),
});

/**
 * A repository as ECR could hold it: unique digests and tags, indexes that reference only images listed before
 * them (a content-addressed manifest cannot reference one that references it), about one index in four, and now
 * and then an index whose manifest could not be read.
 */
export const repositoryArb: fc.Arbitrary<CacheImage[]> = fc.array(imageShape, { maxLength: 40 }).map(shapes => {
  const claimed = new Set<number>();
  return shapes.map((s, i): CacheImage => {
    const tags = s.tags.filter(t => !claimed.has(t));
    tags.forEach(t => claimed.add(t));
    const isIndex = i > 0 && s.indexWeight < 3;
    const status: ImageStatus = s.statusWeight < 2 ? 'ARCHIVED' : s.statusWeight === 2 ? 'ACTIVATING' : 'ACTIVE';
    // The scan reads active indexes only: archived and restoring ones cannot be pulled.
    const children = isIndex && s.unknownChildren > 0 && status === 'ACTIVE' ? [...new Set(s.children.map(c => digestOf(`img${c % i}`)))] : undefined;
    return {
      digest: digestOf(`img${i}`),
      tags: tags.map(t => TAG_POOL[t]),
      sizeBytes: s.sizeBytes,
      pushedAt: s.pushedAt,
      lastPulledAt: s.lastPulledAt,
      isIndex,
      children,
      status,
      lastArchivedAt: status === 'ACTIVE' ? undefined : s.archivedAt,
      lastActivatedAt: status === 'ACTIVE' ? s.activatedAt : undefined,
    };
  });
});

const steps = new Map<string, StepLink>(STEP_CHAIN.map((tag, depth) => [tag, depth === 0 ? { depth } : { depth, parent: STEP_CHAIN[depth - 1] }]));

export const usageArb: fc.Arbitrary<BuildUsage> = fc.record({
  available: fc.integer({ min: 0, max: 4 }),
  uses: fc.dictionary(fc.constantFrom(...TAG_POOL), time),
  defaultBranchRefs: fc.uniqueArray(fc.constantFrom(...TAG_POOL), { maxLength: 2 }),
  refsInUse: fc.uniqueArray(fc.constantFrom(...TAG_POOL), { maxLength: 2 }),
}).map(({ available, uses, defaultBranchRefs, refsInUse }) => (available > 0
  ? {
    historyAvailable: true, lastUseByTag: new Map(Object.entries(uses)),
    defaultBranchRefs: new Set(defaultBranchRefs), refsInUse: new Set(refsInUse), steps,
  }
  : { historyAvailable: false, lastUseByTag: new Map() }));

export const policyArb: fc.Arbitrary<ResolvedCleanupPolicy> = fc.record({
  idleDays: fc.integer({ min: 1, max: 20 }),
  graceHours: fc.integer({ min: 0, max: 48 }),
  maxCacheBytes: fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined }),
  trustIndexPullTime: fc.boolean(),
}).map(p => policy({
  idleTimeoutSeconds: p.idleDays * DAY / 1000,
  untaggedGracePeriodSeconds: p.graceHours * 3600,
  maxCacheBytes: p.maxCacheBytes,
  trustIndexPullTime: p.trustIndexPullTime,
}));
