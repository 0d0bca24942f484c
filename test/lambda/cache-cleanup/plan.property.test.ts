import fc from 'fast-check';
import { DeleteReason, ECR_ARCHIVE_MINIMUM_STORAGE_SECONDS, KeepReason, ResolvedCleanupPolicy } from '../../../lambda/cache-cleanup/contract';
import { CacheImage, plan, Plan } from '../../../lambda/cache-cleanup/plan';
import { BuildUsage } from '../../../lambda/cache-cleanup/usage';
import { policyArb, repositoryArb, usageArb } from './arbitraries';
import { NOW } from './fixtures';

const RUNS = { numRuns: 500 };
const inputs = fc.tuple(repositoryArb, usageArb, policyArb);

// Oracles written from the rules, not from the planner's code.
const statusOf = (image: CacheImage): string => image.status ?? 'ACTIVE';
const archived = (image: CacheImage): boolean => statusOf(image) === 'ARCHIVED';
/** Bytes that count against the budget: archived images are no cache. */
const cacheBytesOf = (image: CacheImage): number => (archived(image) ? 0 : image.isIndex && image.children !== undefined ? 0 : image.sizeBytes);
const pullOf = (image: CacheImage, policy: ResolvedCleanupPolicy): number =>
  (image.isIndex && !policy.trustIndexPullTime ? -Infinity : image.lastPulledAt ?? -Infinity);
const ownUseOf = (image: CacheImage, policy: ResolvedCleanupPolicy): number =>
  Math.max(image.pushedAt, pullOf(image, policy), image.lastActivatedAt ?? -Infinity);
const tagUse = (image: CacheImage, tag: string, usage: BuildUsage, policy: ResolvedCleanupPolicy): number =>
  Math.max(ownUseOf(image, policy), usage.lastUseByTag.get(tag) ?? -Infinity);
/** Without the history a tag moves only with a push: an untagged manifest lost its tag no later than the latest tagged push. */
const untagBound = (image: CacheImage, images: readonly CacheImage[], usage: BuildUsage): number => {
  if (usage.historyAvailable) return -Infinity;
  const latest = Math.max(-Infinity, ...images.filter(i => i.tags.length > 0 && Number.isFinite(i.pushedAt)).map(i => i.pushedAt));
  return latest > image.pushedAt ? latest : -Infinity;
};
const archivedLongEnough = (image: CacheImage): boolean =>
  archived(image) && (image.lastArchivedAt ?? Infinity) <= NOW - ECR_ARCHIVE_MINIMUM_STORAGE_SECONDS * 1000;
/** Active images that no rule may delete: the default branch's tag and refs, and what running builds read. */
const protectedImage = (image: CacheImage, usage: BuildUsage): boolean => statusOf(image) === 'ACTIVE'
  && image.tags.some(t => t === 'main' || usage.defaultBranchRefs?.has(t) || usage.refsInUse?.has(t));

function deletedDigests(p: Plan): Set<string> {
  return new Set(p.delete.map(e => e.image.digest));
}

describe('plan properties', () => {
  test('every image is either kept or deleted, once; deletions are images of the repository', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const p = plan(images, usage, policy, NOW);
      const all = [...p.keep, ...p.delete].map(e => e.image.digest);
      expect(new Set(all).size).toBe(all.length);
      expect(all.sort()).toEqual(images.map(i => i.digest).sort());
      for (const e of p.delete) expect(images).toContain(e.image);
    }), RUNS);
  });

  test('never deletes the default branch\'s cache, nor what a running build reads, whatever the budget', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const deleted = deletedDigests(plan(images, usage, policy, NOW));
      for (const image of images.filter(i => protectedImage(i, usage))) expect(deleted.has(image.digest)).toBe(false);
    }), RUNS);
  });

  test('never deletes a manifest a kept index references; deletes nothing while a kept active index is unreadable', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const p = plan(images, usage, policy, NOW);
      const deleted = deletedDigests(p);
      // An archived index was not read and serves no build: it protects nothing (see plan.ts).
      for (const kept of p.keep.map(e => e.image).filter(i => i.isIndex && !archived(i))) {
        if (kept.children === undefined) expect(p.delete).toEqual([]);
        else for (const child of kept.children) expect(deleted.has(child)).toBe(false);
      }
    }), RUNS);
  });

  test('meets the byte budget whenever evicting what may be evicted can meet it; archived bytes do not count', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      fc.pre(policy.maxCacheBytes !== undefined && usage.historyAvailable);
      const p = plan(images, usage, policy, NOW);
      const keptBytes = p.keep.reduce((s, e) => s + cacheBytesOf(e.image), 0);
      if (keptBytes > policy.maxCacheBytes!) {
        expect(p.keep.filter(e => e.reason === KeepReason.RECENTLY_USED)).toEqual([]);
      }
    }), RUNS);
  });

  test('evicts no more than the budget needs: the most recently used image evicted for it cannot come back', () => {
    // Without step links the eviction order is plain LRU (ties by digest), which this oracle can follow.
    fc.assert(fc.property(inputs, ([images, withSteps, policy]) => {
      const usage = { ...withSteps, steps: undefined };
      fc.pre(policy.maxCacheBytes !== undefined && usage.historyAvailable);
      const p = plan(images, usage, policy, NOW);
      fc.pre(p.keep.every(e => e.reason !== KeepReason.INDEX_CHILDREN_UNKNOWN));
      const evicted = p.delete.filter(e => e.reason === DeleteReason.OVER_BUDGET);
      const byDigest = new Map(evicted.map(e => [e.image.digest, e.image]));
      const unreadable = (i: CacheImage): boolean => i.isIndex && i.children === undefined && !archived(i);
      const total = evicted.reduce((s, e) => s + cacheBytesOf(e.image), 0);
      // What coming back brings back: the image and the evicted manifests it references; through an unreadable index, all.
      const release = (image: CacheImage): number => {
        const seen = new Set<string>();
        let all = false;
        const visit = (i: CacheImage): void => {
          if (seen.has(i.digest)) return;
          seen.add(i.digest);
          if (unreadable(i)) all = true;
          if (!archived(i)) for (const d of i.children ?? []) if (byDigest.has(d)) visit(byDigest.get(d)!);
        };
        visit(image);
        return all ? total : [...seen].reduce((s, d) => s + cacheBytesOf(byDigest.get(d)!), 0);
      };
      // Images the budget evicted in their own right (recently used, not protected), the most recently used last.
      const idleCutoff = NOW - policy.idleTimeoutSeconds * 1000;
      const own = evicted.filter(e => e.image.tags.length > 0 && statusOf(e.image) === 'ACTIVE' && e.lastUse >= idleCutoff && !unreadable(e.image))
        .sort((a, b) => a.lastUse - b.lastUse || (a.image.digest < b.image.digest ? -1 : 1));
      fc.pre(own.length > 0);
      const keptBytes = p.keep.reduce((s, e) => s + cacheBytesOf(e.image), 0);
      expect(keptBytes + release(own[own.length - 1].image)).toBeGreaterThan(policy.maxCacheBytes!);
    }), RUNS);
  });

  test('is idempotent: planning again after the deletions deletes nothing more', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const deleted = deletedDigests(plan(images, usage, policy, NOW));
      const after = images.filter(i => !deleted.has(i.digest));
      expect(plan(after, usage, policy, NOW).delete).toEqual([]);
    }), RUNS);
  });

  test('without build history, deletes only untagged manifests past the grace period and archived images past ECR\'s minimum', () => {
    fc.assert(fc.property(fc.tuple(repositoryArb, policyArb), ([images, policy]) => {
      const p = plan(images, { historyAvailable: false, lastUseByTag: new Map() }, policy, NOW);
      const graceCutoff = NOW - policy.untaggedGracePeriodSeconds * 1000;
      for (const e of p.delete) {
        if (archivedLongEnough(e.image)) continue;
        expect(e.image.tags).toEqual([]);
        const failSafe = { historyAvailable: false, lastUseByTag: new Map() };
        expect(Math.max(ownUseOf(e.image, policy), untagBound(e.image, images, failSafe))).toBeLessThan(graceCutoff);
      }
    }), RUNS);
  });

  test('every reason is true of its image', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const p = plan(images, usage, policy, NOW);
      const idleCutoff = NOW - policy.idleTimeoutSeconds * 1000;
      const graceCutoff = NOW - policy.untaggedGracePeriodSeconds * 1000;
      const recent = (i: CacheImage): boolean => i.tags.some(t => tagUse(i, t, usage, policy) >= idleCutoff);
      for (const { image, reason } of p.delete) {
        if (reason !== DeleteReason.OVER_BUDGET) expect(protectedImage(image, usage)).toBe(false);
        if (reason === DeleteReason.IDLE) expect([recent(image), statusOf(image)]).toEqual([false, 'ACTIVE']);
        if (reason === DeleteReason.OVER_BUDGET) expect(policy.maxCacheBytes).toBeDefined();
        if (reason === DeleteReason.ARCHIVED) expect(archivedLongEnough(image)).toBe(true);
        if (reason === DeleteReason.UNTAGGED_PAST_GRACE) {
          expect(image.tags).toEqual([]);
          expect(Math.max(ownUseOf(image, policy), untagBound(image, images, usage))).toBeLessThan(graceCutoff);
        }
      }
      for (const { image, reason } of p.keep) {
        if (reason === KeepReason.RECENTLY_USED) expect([recent(image), statusOf(image)]).toEqual([true, 'ACTIVE']);
        if (reason === KeepReason.UNTAGGED_IN_GRACE) {
          expect(Math.max(ownUseOf(image, policy), untagBound(image, images, usage))).toBeGreaterThanOrEqual(graceCutoff);
        }
        if (reason === KeepReason.HISTORY_UNAVAILABLE) expect(usage.historyAvailable).toBe(false);
        if (reason === KeepReason.NEWEST_DEFAULT_BRANCH) expect(image.tags.some(t => t === 'main' || usage.defaultBranchRefs?.has(t))).toBe(true);
        if (reason === KeepReason.IN_USE_BY_RUNNING_BUILD) expect(image.tags.some(t => usage.refsInUse?.has(t))).toBe(true);
        if (reason === KeepReason.ARCHIVED_MINIMUM_STORAGE) expect([archived(image), archivedLongEnough(image)]).toEqual([true, false]);
        if (reason === KeepReason.RESTORING) expect(statusOf(image)).toBe('ACTIVATING');
        if (reason === KeepReason.UNTAG_TIME_EVIDENCE) {
          // Its push bounds the untag time of an untagged manifest the plan keeps in its grace (and nothing else did).
          expect(image.tags.length).toBeGreaterThan(0);
          expect(p.keep.some(k => k.reason === KeepReason.UNTAGGED_IN_GRACE && ownUseOf(k.image, policy) < graceCutoff
            && untagBound(k.image, images, usage) === image.pushedAt)).toBe(true);
        }
      }
    }), RUNS);
  });

  test('with history and no budget, a tag used within the idle timeout is never deleted unless its image is archived', () => {
    fc.assert(fc.property(fc.tuple(repositoryArb, usageArb, policyArb), ([images, usage, policy]) => {
      const open = { ...policy, maxCacheBytes: undefined };
      const idleCutoff = NOW - open.idleTimeoutSeconds * 1000;
      for (const e of plan(images, { ...usage, historyAvailable: true }, open, NOW).delete) {
        if (archived(e.image)) continue;
        for (const tag of e.image.tags) expect(tagUse(e.image, tag, usage, open)).toBeLessThan(idleCutoff);
      }
    }), RUNS);
  });
});
