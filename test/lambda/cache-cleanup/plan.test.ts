import { branchTag } from '../../../lib/build-script/cache-refs';
import { DeleteReason, KeepReason } from '../../../lambda/cache-cleanup/contract';
import { accountedBytes, CacheImage, plan, Plan } from '../../../lambda/cache-cleanup/plan';
import { HISTORY_UNAVAILABLE, StepLink } from '../../../lambda/cache-cleanup/usage';
import { DAY, HOUR, image, index, NOW, policy, stepTag, usage } from './fixtures';

function reasons(p: Plan): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of [...p.keep, ...p.delete]) out[e.image.tags[0] ?? e.image.digest.slice(7, 15)] = e.reason;
  return out;
}

function reasonOf(p: Plan, target: CacheImage): string | undefined {
  return [...p.keep, ...p.delete].find(e => e.image.digest === target.digest)?.reason;
}

describe('plan: use within the idle timeout', () => {
  test('a ref every build reads stays alive though nobody pushed it for weeks (no-op builds push nothing)', () => {
    const feature = branchTag('feature/x');
    const images = [image('main', { tags: ['main'], pushedAt: NOW - 60 * DAY }), image('f', { tags: [feature], pushedAt: NOW - 60 * DAY })];
    const p = plan(images, usage({ [feature]: NOW - 2 * DAY }), policy(), NOW);
    expect(reasons(p)).toEqual({ main: KeepReason.NEWEST_DEFAULT_BRANCH, [feature]: KeepReason.RECENTLY_USED });
  });

  test('a ref no build used, nobody pulled and nobody pushed within the idle timeout is deleted as idle', () => {
    const images = [image('main', { tags: ['main'] }), image('old', { tags: ['old'], pushedAt: NOW - 15 * DAY, lastPulledAt: NOW - 15 * DAY })];
    const p = plan(images, usage({ old: NOW - 15 * DAY }), policy(), NOW);
    expect(p.delete.map(e => [e.image.tags[0], e.reason])).toEqual([['old', DeleteReason.IDLE]]);
  });

  test('the idle timeout is configurable, and a push or a recorded pull inside it counts as use', () => {
    const images = [
      image('main', { tags: ['main'] }),
      image('pushed', { tags: ['pushed'], pushedAt: NOW - 2 * DAY }),
      image('pulled', { tags: ['pulled'], lastPulledAt: NOW - 2 * DAY }),
      image('stale', { tags: ['stale'], pushedAt: NOW - 4 * DAY }),
    ];
    const p = plan(images, usage(), policy({ idleTimeoutSeconds: 3 * 24 * 3600 }), NOW);
    expect(reasons(p)).toMatchObject({ pushed: KeepReason.RECENTLY_USED, pulled: KeepReason.RECENTLY_USED, stale: DeleteReason.IDLE });
  });

  test('the pull time of an index is ignored unless trusted: our own BatchGetImage records a pull', () => {
    const child = image('child');
    const idx = index('idx', [child], { tags: ['feat'], lastPulledAt: NOW - HOUR });
    const images = [image('main', { tags: ['main'] }), idx, child];
    expect(reasonOf(plan(images, usage(), policy(), NOW), idx)).toBe(DeleteReason.IDLE);
    expect(reasonOf(plan(images, usage(), policy({ trustIndexPullTime: true }), NOW), idx)).toBe(KeepReason.RECENTLY_USED);
  });

  test('buildah step tags are kept or deleted by their own last use', () => {
    const used = image('s1', { tags: [stepTag('1')], lastPulledAt: NOW - DAY });
    const unused = image('s2', { tags: [stepTag('2')], lastPulledAt: NOW - 20 * DAY });
    const p = plan([image('main', { tags: ['main'] }), used, unused], usage(), policy(), NOW);
    expect(reasonOf(p, used)).toBe(KeepReason.RECENTLY_USED);
    expect(reasonOf(p, unused)).toBe(DeleteReason.IDLE);
  });

  test('an image with several tags is kept when any of them is alive', () => {
    const shared = image('shared', { tags: ['a', 'b'] });
    const p = plan([shared], usage({ b: NOW - DAY }), policy(), NOW);
    expect(p.keep.map(e => e.reason)).toEqual([KeepReason.RECENTLY_USED]);
  });
});

describe('plan: the default branch\'s cache', () => {
  test('the image tagged with the default branch\'s tag is kept however long it has been idle, and however small the budget', () => {
    const main = image('main', { tags: ['main'], pushedAt: NOW - 400 * DAY, sizeBytes: 10_000 });
    const p = plan([main], usage(), policy({ maxCacheBytes: 1 }), NOW);
    expect(p.keep.map(e => e.reason)).toEqual([KeepReason.NEWEST_DEFAULT_BRANCH]);
  });

  test('follows the configured default branch tag', () => {
    const trunk = branchTag('release/2.x');
    const images = [image('main', { tags: ['main'] }), image('trunk', { tags: [trunk] })];
    expect(reasons(plan(images, usage(), policy({ defaultBranchTag: trunk }), NOW))).toEqual({
      main: DeleteReason.IDLE, [trunk]: KeepReason.NEWEST_DEFAULT_BRANCH,
    });
  });

  test('buildah: the step tags the newest successful default-branch build used are kept, idle or over budget', () => {
    const steps = ['1', '2', '3'].map(k => image(`s${k}`, { tags: [stepTag(k)], pushedAt: NOW - 40 * DAY }));
    const other = image('o', { tags: [stepTag('o')], pushedAt: NOW - HOUR });
    const p = plan([...steps, other], usage({}, { defaultBranchRefs: new Set(['1', '2', '3'].map(stepTag)) }), policy({ maxCacheBytes: 100 }), NOW);
    expect(steps.map(s => reasonOf(p, s))).toEqual(Array(3).fill(KeepReason.NEWEST_DEFAULT_BRANCH));
    expect(reasonOf(p, other)).toBe(DeleteReason.OVER_BUDGET);
  });

  test('an archived image is no cache, so not the protected one', () => {
    const main = image('main', { tags: ['main'], status: 'ARCHIVED', lastArchivedAt: NOW - 100 * DAY });
    expect(reasonOf(plan([main], usage(), policy(), NOW), main)).toBe(DeleteReason.ARCHIVED);
  });
});

describe('plan: running builds', () => {
  test('what a build in progress reads is kept, idle or over budget', () => {
    const feature = image('f', { tags: [branchTag('feature/z')], pushedAt: NOW - 30 * DAY });
    const step = image('s', { tags: [stepTag('z')], pushedAt: NOW - 30 * DAY });
    const recent = image('r', { tags: ['recent'], pushedAt: NOW - HOUR });
    const p = plan([feature, step, recent], usage({}, { refsInUse: new Set([branchTag('feature/z'), stepTag('z')]) }), policy({ maxCacheBytes: 150 }), NOW);
    expect([reasonOf(p, feature), reasonOf(p, step)]).toEqual(Array(2).fill(KeepReason.IN_USE_BY_RUNNING_BUILD));
    expect(reasonOf(p, recent)).toBe(DeleteReason.OVER_BUDGET);
  });
});

describe('plan: untagged manifests', () => {
  test('are kept during the grace period after their push or last pull, then deleted', () => {
    const fresh = image('fresh', { pushedAt: NOW - 2 * HOUR });
    const pulled = image('pulled', { pushedAt: NOW - 10 * DAY, lastPulledAt: NOW - 3 * HOUR });
    const old = image('old', { pushedAt: NOW - 2 * DAY });
    const p = plan([image('main', { tags: ['main'] }), fresh, pulled, old], usage(), policy(), NOW);
    expect(reasonOf(p, fresh)).toBe(KeepReason.UNTAGGED_IN_GRACE);
    expect(reasonOf(p, pulled)).toBe(KeepReason.UNTAGGED_IN_GRACE);
    expect(reasonOf(p, old)).toBe(DeleteReason.UNTAGGED_PAST_GRACE);
    expect(reasonOf(plan([old], usage(), policy({ untaggedGracePeriodSeconds: 3 * 24 * 3600 }), NOW), old)).toBe(KeepReason.UNTAGGED_IN_GRACE);
  });

  test('the grace runs from when the manifest lost its tag, as the build history tells it', () => {
    // Pushed 10 days ago by a build that wrote `feat`; the next build that wrote `feat` ended an hour ago.
    const replaced = image('replaced', { pushedAt: NOW - 10 * DAY });
    const current = image('current', { tags: ['feat'], pushedAt: NOW - HOUR - 60_000 });
    const writes = [
      { start: NOW - 10 * DAY - 600_000, end: NOW - 10 * DAY + 60_000, refs: ['feat'] },
      { start: NOW - HOUR - 600_000, end: NOW - HOUR, refs: ['feat'] },
    ];
    const p = plan([replaced, current], usage({ feat: NOW - HOUR }, { writes, completeSince: NOW - 14 * DAY }), policy(), NOW);
    expect(reasonOf(p, replaced)).toBe(KeepReason.UNTAGGED_IN_GRACE);
    expect(reasonOf(plan([replaced, current], usage({ feat: NOW - HOUR }, { writes, completeSince: NOW - 14 * DAY }), policy(), NOW + DAY), replaced))
      .toBe(DeleteReason.UNTAGGED_PAST_GRACE);
  });
});

describe('plan: archived and restoring images', () => {
  test('archived: kept for ECR\'s 90-day minimum storage, then deleted; reads and pulls do not keep it (it cannot be pulled)', () => {
    const young = image('young', { tags: ['young'], status: 'ARCHIVED', lastArchivedAt: NOW - 89 * DAY });
    const old = image('old', { tags: ['old'], status: 'ARCHIVED', lastArchivedAt: NOW - 91 * DAY, lastPulledAt: NOW - HOUR });
    const unknown = image('unknown', { status: 'ARCHIVED' });
    const p = plan([young, old, unknown], usage({ old: NOW - HOUR }), policy(), NOW);
    expect([reasonOf(p, young), reasonOf(p, old), reasonOf(p, unknown)]).toEqual([
      KeepReason.ARCHIVED_MINIMUM_STORAGE, DeleteReason.ARCHIVED, KeepReason.ARCHIVED_MINIMUM_STORAGE,
    ]);
  });

  test('an archived index pins nothing (it was not read and serves no build); a restoring index blocks deletions like an unreadable one', () => {
    const loose = image('loose', { pushedAt: NOW - 5 * DAY });
    const archivedIndex = index('ai', undefined, { tags: ['ai'], status: 'ARCHIVED', lastArchivedAt: NOW - DAY });
    expect(reasonOf(plan([archivedIndex, loose], usage(), policy(), NOW), loose)).toBe(DeleteReason.UNTAGGED_PAST_GRACE);
    const restoring = index('ri', undefined, { tags: ['ri'], status: 'ACTIVATING' });
    const p = plan([restoring, loose], usage(), policy(), NOW);
    expect([reasonOf(p, restoring), reasonOf(p, loose)]).toEqual([KeepReason.RESTORING, KeepReason.INDEX_CHILDREN_UNKNOWN]);
  });

  test('a restore is a use: an image restored an hour ago is not idle', () => {
    const restored = image('restored', { tags: ['r'], pushedAt: NOW - 60 * DAY, lastActivatedAt: NOW - HOUR });
    expect(reasonOf(plan([restored], usage(), policy(), NOW), restored)).toBe(KeepReason.RECENTLY_USED);
  });

  test('archived bytes are no cache bytes: they never push the budget', () => {
    const live = image('live', { tags: ['live'], sizeBytes: 100, pushedAt: NOW - HOUR });
    const archived = image('a', { tags: ['a'], sizeBytes: 10_000, status: 'ARCHIVED', lastArchivedAt: NOW - DAY });
    const p = plan([live, archived], usage(), policy({ maxCacheBytes: 150 }), NOW);
    expect([reasonOf(p, live), reasonOf(p, archived)]).toEqual([KeepReason.RECENTLY_USED, KeepReason.ARCHIVED_MINIMUM_STORAGE]);
  });
});

describe('plan: image indexes', () => {
  test('the children of a kept index are kept, even idle or tagged idle; those of a deleted index are not', () => {
    const amd = image('amd');
    const att = image('att', { tags: ['stale-child'] });
    const kept = index('kept', [amd, att], { tags: ['main'] });
    const orphan = image('orphan');
    const gone = index('gone', [orphan], { tags: ['gone'] });
    const p = plan([kept, amd, att, gone, orphan], usage(), policy(), NOW);
    expect(reasonOf(p, amd)).toBe(KeepReason.CHILD_OF_KEPT_INDEX);
    expect(reasonOf(p, att)).toBe(KeepReason.CHILD_OF_KEPT_INDEX);
    expect(reasonOf(p, gone)).toBe(DeleteReason.IDLE);
    expect(reasonOf(p, orphan)).toBe(DeleteReason.UNTAGGED_PAST_GRACE);
  });

  test('keeping goes through nested indexes, and an untagged index in grace keeps its children', () => {
    const leaf = image('leaf');
    const inner = index('inner', [leaf]);
    const outer = index('outer', [inner], { pushedAt: NOW - HOUR });
    const p = plan([leaf, inner, outer], usage(), policy(), NOW);
    expect([reasonOf(p, outer), reasonOf(p, inner), reasonOf(p, leaf)]).toEqual([
      KeepReason.UNTAGGED_IN_GRACE, KeepReason.CHILD_OF_KEPT_INDEX, KeepReason.CHILD_OF_KEPT_INDEX,
    ]);
  });

  test('while a kept index could not be read nothing is deleted (it might reference anything); a deleted one blocks nothing', () => {
    const loose = image('loose');
    const unknownKept = index('u', undefined, { tags: ['main'] });
    const idleTagged = image('idle', { tags: ['idle'] });
    const blocked = plan([unknownKept, loose, idleTagged], usage(), policy(), NOW);
    expect(blocked.delete).toEqual([]);
    expect([reasonOf(blocked, loose), reasonOf(blocked, idleTagged)]).toEqual(Array(2).fill(KeepReason.INDEX_CHILDREN_UNKNOWN));
    const unknownIdle = index('u2', undefined, { tags: ['feat'] });
    const p = plan([image('main', { tags: ['main'] }), unknownIdle, loose], usage(), policy(), NOW);
    expect(reasonOf(p, unknownIdle)).toBe(DeleteReason.IDLE);
    expect(reasonOf(p, loose)).toBe(DeleteReason.UNTAGGED_PAST_GRACE);
  });

  test('an index whose children are known adds no bytes of its own (ECR reports its largest child)', () => {
    const child = image('c', { sizeBytes: 700 });
    expect(accountedBytes(index('i', [child], { sizeBytes: 700 }))).toBe(0);
    expect(accountedBytes(index('i', undefined, { sizeBytes: 700 }))).toBe(700);
    expect(accountedBytes(child)).toBe(700);
  });
});

describe('plan: maxCacheBytes', () => {
  const main = image('main', { tags: ['main'], sizeBytes: 1000, pushedAt: NOW - DAY });
  const refs = [1, 2, 3, 4].map(k => image(`f${k}`, { tags: [`f${k}`], sizeBytes: 1000, pushedAt: NOW - 5 * DAY }));
  const use = usage({ f1: NOW - 4 * DAY, f2: NOW - 1 * DAY, f3: NOW - 3 * DAY, f4: NOW - 2 * DAY });

  test('evicts least recently used first, and only until the budget is met', () => {
    const p = plan([main, ...refs], use, policy({ maxCacheBytes: 3000 }), NOW);
    expect(p.delete.map(e => [e.image.tags[0], e.reason])).toEqual([['f1', DeleteReason.OVER_BUDGET], ['f3', DeleteReason.OVER_BUDGET]]);
    expect(p.keep.reduce((s, e) => s + e.bytes, 0)).toBe(3000);
  });

  test('last use is the latest of build use, recorded pull and push', () => {
    const pulled = image('f1', { tags: ['f1'], sizeBytes: 1000, pushedAt: NOW - 5 * DAY, lastPulledAt: NOW - HOUR });
    const p = plan([main, pulled, ...refs.slice(1)], use, policy({ maxCacheBytes: 3000 }), NOW);
    expect(p.delete.map(e => e.image.tags[0])).toEqual(['f3', 'f4']);
  });

  test('evicting an index frees its children, except those another kept index still references', () => {
    const shared = image('shared', { sizeBytes: 500 });
    const own = image('own', { sizeBytes: 500 });
    const old = index('old', [shared, own], { tags: ['old'], pushedAt: NOW - 3 * DAY });
    const recent = index('recent', [shared], { tags: ['recent'], pushedAt: NOW - 1 * DAY });
    const p = plan([image('main', { tags: ['main'], sizeBytes: 0 }), old, recent, shared, own], usage(), policy({ maxCacheBytes: 600 }), NOW);
    expect(reasons(p)).toMatchObject({ old: DeleteReason.OVER_BUDGET, recent: KeepReason.RECENTLY_USED });
    expect(reasonOf(p, own)).toBe(DeleteReason.OVER_BUDGET);
    expect(reasonOf(p, shared)).toBe(KeepReason.CHILD_OF_KEPT_INDEX);
  });

  test('an unreadable index kept only by an evicted index does not keep itself and the untagged manifests alive', () => {
    // Regression (found by the idempotency property): the "might be its child" protection once counted for itself.
    const unreadable = index('u', undefined, { sizeBytes: 100 });
    const parent = index('p', [unreadable], { tags: ['p'], pushedAt: NOW - DAY });
    const loose = image('loose', { sizeBytes: 100 });
    const images = [image('main', { tags: ['main'], sizeBytes: 0 }), parent, unreadable, loose];
    const p = plan(images, usage(), policy({ maxCacheBytes: 50 }), NOW);
    expect([reasonOf(p, parent), reasonOf(p, unreadable), reasonOf(p, loose)]).toEqual(Array(3).fill(DeleteReason.OVER_BUDGET));
    const withoutBudget = plan(images, usage(), policy(), NOW);
    expect([reasonOf(withoutBudget, unreadable), reasonOf(withoutBudget, loose)]).toEqual([
      KeepReason.CHILD_OF_KEPT_INDEX, KeepReason.INDEX_CHILDREN_UNKNOWN,
    ]);
  });

  describe('buildah steps', () => {
    const chain = (...names: string[]): Map<string, StepLink> => new Map(names.map((n, depth) => [stepTag(n),
      depth === 0 ? { depth } : { depth, parent: stepTag(names[depth - 1]) }]));

    test('on a tie the deepest step goes first (base 100 ⊂ mid 150 ⊂ top 200, budget 350)', () => {
      // Digests that a tie broken by digest would evict base first.
      const at = (c: string, tag: string, sizeBytes: number): CacheImage => ({ ...image(tag, { tags: [stepTag(tag)], sizeBytes }), digest: `sha256:${c.repeat(64)}` });
      const images = [at('a', 'base', 100), at('b', 'mid', 150), at('c', 'top', 200)];
      const used = Object.fromEntries(['base', 'mid', 'top'].map(n => [stepTag(n), NOW - HOUR]));
      const p = plan(images, usage(used, { steps: chain('base', 'mid', 'top') }), policy({ maxCacheBytes: 350 }), NOW);
      expect(p.delete.map(e => e.image.digest)).toEqual([images[2].digest]);
    });

    test('a step counts as used no later than the step below it: a recently pulled upper step is of no use without its base', () => {
      const base = image('base', { tags: [stepTag('base')], sizeBytes: 100 });
      const top = image('top', { tags: [stepTag('top')], sizeBytes: 100, lastPulledAt: NOW - HOUR });
      const other = image('other', { tags: [stepTag('other')], sizeBytes: 100 });
      const use = usage({ [stepTag('base')]: NOW - 3 * DAY, [stepTag('other')]: NOW - 2 * DAY }, { steps: chain('base', 'top') });
      // By its own last use the top step would stay and the base go, leaving the top unreachable.
      const p = plan([base, top, other], use, policy({ maxCacheBytes: 200 }), NOW);
      expect(p.delete.map(e => e.image.tags[0])).toEqual([stepTag('top')]);
    });

    test('a step below that is kept whatever happens (the default branch\'s) does not hold its upper steps back', () => {
      const base = image('base', { tags: [stepTag('base')], sizeBytes: 100 });
      const top = image('top', { tags: [stepTag('top')], sizeBytes: 100 });
      const other = image('other', { tags: [stepTag('other')], sizeBytes: 100 });
      const use = usage({ [stepTag('base')]: NOW - 10 * DAY, [stepTag('top')]: NOW - HOUR, [stepTag('other')]: NOW - 2 * DAY },
        { steps: chain('base', 'top'), defaultBranchRefs: new Set([stepTag('base')]) });
      const p = plan([base, top, other], use, policy({ maxCacheBytes: 200 }), NOW);
      expect(p.delete.map(e => e.image.tags[0])).toEqual([stepTag('other')]);
    });
  });

  test('with an unreadable index kept, evictions that free nothing are taken back once the index goes', () => {
    // a1, a2, a3 = 50 and an unreadable index u = 10, budget 120, used in the order a1, a2, u, a3.
    const a = [1, 2, 3].map(k => image(`a${k}`, { tags: [`a${k}`], sizeBytes: 50 }));
    const u = index('u', undefined, { tags: ['u'], sizeBytes: 10 });
    const use = usage({ a1: NOW - 4 * DAY, a2: NOW - 3 * DAY, u: NOW - 2 * DAY, a3: NOW - DAY });
    const p = plan([...a, u], use, policy({ maxCacheBytes: 120 }), NOW);
    expect(p.delete.map(e => e.image.tags[0]).sort()).toEqual(['a1', 'u']);
    expect(p.keep.map(e => [e.image.tags[0], e.reason]).sort()).toEqual([['a2', KeepReason.RECENTLY_USED], ['a3', KeepReason.RECENTLY_USED]]);
  });

  test('an index that cannot be evicted keeps every image, and no eviction is pretended', () => {
    const u = index('u', undefined, { tags: ['main'], sizeBytes: 10 });
    const a = image('a', { tags: ['a'], sizeBytes: 500, pushedAt: NOW - HOUR });
    const p = plan([u, a], usage(), policy({ maxCacheBytes: 100 }), NOW);
    expect(p.delete).toEqual([]);
    expect(reasonOf(p, a)).toBe(KeepReason.INDEX_CHILDREN_UNKNOWN);
  });

  test('never evicts what no rule lets it: the newest default cache and untagged manifests in grace', () => {
    const inGrace = image('g', { sizeBytes: 5000, pushedAt: NOW - HOUR });
    const p = plan([main, inGrace, ...refs], use, policy({ maxCacheBytes: 10 }), NOW);
    expect(p.keep.map(e => e.reason).sort()).toEqual([KeepReason.NEWEST_DEFAULT_BRANCH, KeepReason.UNTAGGED_IN_GRACE]);
    expect(p.delete).toHaveLength(4);
  });
});

describe('plan: fail safe (history unavailable)', () => {
  test('keeps every tagged image, deletes only unreferenced untagged manifests past grace', () => {
    const child = image('child');
    const images = [
      image('main', { tags: ['main'] }), image('idle', { tags: ['idle'], pushedAt: NOW - 300 * DAY }),
      index('idx', [child], { tags: ['x'], pushedAt: NOW - 300 * DAY }), child, image('loose'), image('fresh', { pushedAt: NOW - HOUR }),
    ];
    const p = plan(images, HISTORY_UNAVAILABLE, policy({ maxCacheBytes: 1 }), NOW);
    expect(p.delete.map(e => [e.image.digest, e.reason])).toEqual([[images[4].digest, DeleteReason.UNTAGGED_PAST_GRACE]]);
    expect(reasons(p)).toMatchObject({
      main: KeepReason.NEWEST_DEFAULT_BRANCH, idle: KeepReason.HISTORY_UNAVAILABLE, x: KeepReason.HISTORY_UNAVAILABLE,
    });
  });
});

describe('plan: the evidence of an untag time stays while the grace it bounds runs', () => {
  test('an archived tagged image whose push is the only bound on when an untagged manifest lost its tag is kept, and the next run agrees', () => {
    // Fail safe: the untagged manifest lost its tag no later than the latest push of a tagged image, 100 days ago, inside a
    // 120-day grace. That image is archived past ECR's minimum (deletable); deleting it would let the next run count the
    // grace from the manifest's own push, 200 days ago.
    const holder = image('holder', { tags: ['main'], pushedAt: NOW - 100 * DAY, status: 'ARCHIVED', lastArchivedAt: NOW - 95 * DAY });
    const loose = image('loose', { pushedAt: NOW - 200 * DAY });
    const grace = policy({ untaggedGracePeriodSeconds: 120 * 24 * 3600 });
    const first = plan([holder, loose], HISTORY_UNAVAILABLE, grace, NOW);
    expect([reasonOf(first, holder), reasonOf(first, loose)]).toEqual([KeepReason.UNTAG_TIME_EVIDENCE, KeepReason.UNTAGGED_IN_GRACE]);
    expect(plan([holder, loose], HISTORY_UNAVAILABLE, grace, NOW).delete).toEqual([]);
    // Once the grace has run out, both go.
    const later = plan([holder, loose], HISTORY_UNAVAILABLE, grace, NOW + 30 * DAY);
    expect(later.delete.map(e => e.reason).sort()).toEqual([DeleteReason.ARCHIVED, DeleteReason.UNTAGGED_PAST_GRACE]);
  });
});

describe('plan: input', () => {
  test('rejects a digest listed twice', () => {
    expect(() => plan([image('a'), image('a')], usage(), policy(), NOW)).toThrow(/duplicate image digest sha256:/);
  });
});
