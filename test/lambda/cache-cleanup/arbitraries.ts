import fc from 'fast-check';
import { ResolvedCleanupPolicy } from '../../../lambda/cache-cleanup/contract';
import { BuildUsage, CacheImage } from '../../../lambda/cache-cleanup/plan';
import { DAY, digestOf, HOUR, NOW, policy, stepTag } from './fixtures';

/** Tags a generated repository draws from: the default family, two feature families, buildah step tags. */
export const TAG_POOL = ['main', 'main--1', 'main--2', 'feat-a', 'feat-a--1', 'feat-a--2', 'feat-b', 'fix-9c0ffee1',
  stepTag('1'), stepTag('2'), stepTag('3'), stepTag('4')];

const time = fc.integer({ min: -40 * 24, max: 0 }).map(h => NOW + h * HOUR);

const imageShape = fc.record({
  tags: fc.uniqueArray(fc.integer({ min: 0, max: TAG_POOL.length - 1 }), { maxLength: 2 }),
  sizeBytes: fc.integer({ min: 0, max: 2000 }),
  pushedAt: time,
  lastPulledAt: fc.option(time, { nil: undefined }),
  indexWeight: fc.integer({ min: 0, max: 9 }),
  children: fc.uniqueArray(fc.nat(), { maxLength: 3 }),
  unknownChildren: fc.integer({ min: 0, max: 9 }),
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
    const children = isIndex && s.unknownChildren > 0 ? [...new Set(s.children.map(c => digestOf(`img${c % i}`)))] : undefined;
    return {
      digest: digestOf(`img${i}`),
      tags: tags.map(t => TAG_POOL[t]),
      sizeBytes: s.sizeBytes,
      pushedAt: s.pushedAt,
      lastPulledAt: s.lastPulledAt,
      isIndex,
      children,
    };
  });
});

export const usageArb: fc.Arbitrary<BuildUsage> = fc.record({
  available: fc.integer({ min: 0, max: 4 }),
  uses: fc.dictionary(fc.constantFrom(...TAG_POOL), time),
}).map(({ available, uses }) => ({ historyAvailable: available > 0, lastUseByTag: new Map(Object.entries(uses)) }));

export const policyArb: fc.Arbitrary<ResolvedCleanupPolicy> = fc.record({
  idleDays: fc.integer({ min: 1, max: 20 }),
  graceHours: fc.integer({ min: 0, max: 48 }),
  maxRefsPerBranch: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  maxCacheBytes: fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined }),
  trustIndexPullTime: fc.boolean(),
}).map(p => policy({
  idleTimeoutSeconds: p.idleDays * DAY / 1000,
  untaggedGracePeriodSeconds: p.graceHours * 3600,
  maxRefsPerBranch: p.maxRefsPerBranch,
  maxCacheBytes: p.maxCacheBytes,
  trustIndexPullTime: p.trustIndexPullTime,
}));
