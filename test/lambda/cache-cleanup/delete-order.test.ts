import fc from 'fast-check';
import { deletionBatches } from '../../../lambda/cache-cleanup/delete-order';
import { CacheImage } from '../../../lambda/cache-cleanup/plan';
import { repositoryArb } from './arbitraries';
import { image, index } from './fixtures';

function batchOf(batches: string[][]): Map<string, number> {
  const at = new Map<string, number>();
  batches.forEach((b, k) => b.forEach(d => at.set(d, k)));
  return at;
}

describe('deletionBatches', () => {
  test('plain images fill batches of 100: ceil(n / 100) calls', () => {
    const images = Array.from({ length: 250 }, (_, k) => image(`p${k}`));
    expect(deletionBatches(images).map(b => b.length)).toEqual([100, 100, 50]);
    expect(deletionBatches([])).toEqual([]);
  });

  test('an index goes in an earlier call than its children, and filling around them costs no extra call', () => {
    const children = Array.from({ length: 30 }, (_, k) => image(`c${k}`));
    const idx = index('idx', children);
    const plain = Array.from({ length: 120 }, (_, k) => image(`p${k}`));
    const batches = deletionBatches([...children, ...plain, idx]);
    expect(batches).toHaveLength(2);
    expect(batches[0]).toContain(idx.digest);
    for (const c of children) expect(batches[1]).toContain(c.digest);
  });

  test('an index whose children are unknown (unreadable, or archived) goes in a call before every other image', () => {
    // ECR judges a call against the repository before it (ECR11): it might reference any of the others.
    const unknown = [index('u1', undefined), { ...index('u2', undefined), status: 'ARCHIVED' as const }];
    const plain = Array.from({ length: 150 }, (_, k) => image(`p${k}`));
    const batches = deletionBatches([...plain.slice(0, 70), ...unknown, ...plain.slice(70)]);
    expect(batches.map(b => b.length)).toEqual([2, 100, 50]);
    expect(batches[0].sort()).toEqual(unknown.map(u => u.digest).sort());
  });

  test('a chain of nested indexes needs one call per level', () => {
    const leaf = image('leaf');
    const mid = index('mid', [leaf]);
    const top = index('top', [mid]);
    expect(deletionBatches([leaf, mid, top])).toEqual([[top.digest], [mid.digest], [leaf.digest]]);
  });

  test('references to images outside the deletion set impose no order', () => {
    const kept = image('kept');
    expect(deletionBatches([index('idx', [kept]), image('x')], 2)).toHaveLength(1);
  });

  test('properties: every image once, batches within size, parents strictly before children', () => {
    fc.assert(fc.property(repositoryArb, fc.integer({ min: 1, max: 7 }), fc.infiniteStream(fc.boolean()), (images, size, pick) => {
      const chosen: CacheImage[] = images.filter(() => pick.next().value);
      const batches = deletionBatches(chosen, size);
      expect(batches.flat().sort()).toEqual(chosen.map(i => i.digest).sort());
      for (const b of batches) expect(b.length).toBeGreaterThan(0);
      for (const b of batches) expect(b.length).toBeLessThanOrEqual(size);
      const at = batchOf(batches);
      for (const parent of chosen) {
        for (const child of parent.children ?? []) {
          if (at.has(child)) expect(at.get(parent.digest)!).toBeLessThan(at.get(child)!);
        }
      }
      // Indexes whose children are unknown go before every image that is not an index above one of them. (No order can put
      // each before all but its own ancestors: two readable indexes, each above another unreadable one, would form a cycle.)
      const unknown = chosen.filter(i => i.isIndex && i.children === undefined);
      const above = new Set<string>();
      const walk = (d: string): void => chosen.filter(p => p.children?.includes(d) && !above.has(p.digest)).forEach(p => {
        above.add(p.digest);
        walk(p.digest);
      });
      unknown.forEach(u => walk(u.digest));
      const lastUnknown = Math.max(-1, ...unknown.map(u => at.get(u.digest)!));
      for (const other of chosen) {
        if (!unknown.includes(other) && !above.has(other.digest)) expect(at.get(other.digest)!).toBeGreaterThan(lastUnknown);
      }
      const withoutEdges = chosen.every(i => (i.children ?? []).every(c => !at.has(c)));
      if (withoutEdges) expect(batches).toHaveLength(Math.ceil(unknown.length / size) + Math.ceil((chosen.length - unknown.length) / size));
    }), { numRuns: 500 });
  });
});
