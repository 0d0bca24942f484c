import fc from 'fast-check';
import { DeleteReason, KeepReason, ResolvedCleanupPolicy } from '../../../lambda/cache-cleanup/contract';
import { BuildUsage, CacheImage, plan, Plan } from '../../../lambda/cache-cleanup/plan';
import { policyArb, repositoryArb, usageArb } from './arbitraries';
import { NOW } from './fixtures';

const RUNS = { numRuns: 500 };
const inputs = fc.tuple(repositoryArb, usageArb, policyArb);

// Oracles written from the rules, not from the planner's code.
const isDefaultFamily = (tag: string): boolean => tag === 'main' || tag.startsWith('main--');
const bytesOf = (image: CacheImage): number => (image.isIndex && image.children !== undefined ? 0 : image.sizeBytes);
const pullOf = (image: CacheImage, policy: ResolvedCleanupPolicy): number =>
  (image.isIndex && !policy.trustIndexPullTime ? -Infinity : image.lastPulledAt ?? -Infinity);
const tagUse = (image: CacheImage, tag: string, usage: BuildUsage, policy: ResolvedCleanupPolicy): number =>
  Math.max(image.pushedAt, pullOf(image, policy), usage.lastUseByTag.get(tag) ?? -Infinity);

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

  test('never deletes the newest cache of the default branch', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const family = images.filter(i => i.tags.some(isDefaultFamily));
      fc.pre(family.length > 0);
      const newest = Math.max(...family.map(i => i.pushedAt));
      const deleted = deletedDigests(plan(images, usage, policy, NOW));
      expect(family.filter(i => i.pushedAt === newest).some(i => !deleted.has(i.digest))).toBe(true);
    }), RUNS);
  });

  test('never deletes a manifest a kept index references; deletes nothing while a kept index is unreadable', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const p = plan(images, usage, policy, NOW);
      const deleted = deletedDigests(p);
      for (const kept of p.keep.map(e => e.image).filter(i => i.isIndex)) {
        if (kept.children === undefined) expect(p.delete).toEqual([]);
        else for (const child of kept.children) expect(deleted.has(child)).toBe(false);
      }
    }), RUNS);
  });

  test('meets the byte budget whenever evicting what may be evicted can meet it', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      fc.pre(policy.maxCacheBytes !== undefined);
      const p = plan(images, usage, policy, NOW);
      const keptBytes = p.keep.reduce((s, e) => s + bytesOf(e.image), 0);
      if (keptBytes > policy.maxCacheBytes!) {
        expect(p.keep.filter(e => e.reason === KeepReason.RECENTLY_USED)).toEqual([]);
      }
    }), RUNS);
  });

  test('is idempotent: planning again after the deletions deletes nothing more', () => {
    fc.assert(fc.property(inputs, ([images, usage, policy]) => {
      const deleted = deletedDigests(plan(images, usage, policy, NOW));
      const after = images.filter(i => !deleted.has(i.digest));
      expect(plan(after, usage, policy, NOW).delete).toEqual([]);
    }), RUNS);
  });

  test('without build history, deletes only untagged manifests past the grace period', () => {
    fc.assert(fc.property(fc.tuple(repositoryArb, policyArb), ([images, policy]) => {
      const p = plan(images, { historyAvailable: false, lastUseByTag: new Map() }, policy, NOW);
      const graceCutoff = NOW - policy.untaggedGracePeriodSeconds * 1000;
      for (const e of p.delete) {
        expect(e.image.tags).toEqual([]);
        expect(Math.max(e.image.pushedAt, pullOf(e.image, policy))).toBeLessThan(graceCutoff);
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
        if (reason === DeleteReason.IDLE) expect(recent(image)).toBe(false);
        if (reason === DeleteReason.OVER_MAX_REFS) expect(policy.maxRefsPerBranch).toBeDefined();
        if (reason === DeleteReason.OVER_BUDGET) expect(policy.maxCacheBytes).toBeDefined();
        if (reason === DeleteReason.UNTAGGED_PAST_GRACE) {
          expect(image.tags).toEqual([]);
          expect(Math.max(image.pushedAt, pullOf(image, policy))).toBeLessThan(graceCutoff);
        }
      }
      for (const { image, reason } of p.keep) {
        if (reason === KeepReason.RECENTLY_USED) expect(recent(image)).toBe(true);
        if (reason === KeepReason.UNTAGGED_IN_GRACE) expect(Math.max(image.pushedAt, pullOf(image, policy))).toBeGreaterThanOrEqual(graceCutoff);
        if (reason === KeepReason.HISTORY_UNAVAILABLE) expect(usage.historyAvailable).toBe(false);
        if (reason === KeepReason.NEWEST_DEFAULT_BRANCH) expect(image.tags.some(isDefaultFamily)).toBe(true);
      }
    }), RUNS);
  });

  test('with history and no limits, a tag used within the idle timeout is never deleted', () => {
    fc.assert(fc.property(fc.tuple(repositoryArb, usageArb, policyArb), ([images, usage, policy]) => {
      const open = { ...policy, maxRefsPerBranch: undefined, maxCacheBytes: undefined };
      const idleCutoff = NOW - open.idleTimeoutSeconds * 1000;
      for (const e of plan(images, { ...usage, historyAvailable: true }, open, NOW).delete) {
        for (const tag of e.image.tags) expect(tagUse(e.image, tag, usage, open)).toBeLessThan(idleCutoff);
      }
    }), RUNS);
  });
});
