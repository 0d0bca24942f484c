import { CacheImage } from './plan';

/** BatchDeleteImage takes at most 100 image ids a call. */
export const DELETE_BATCH_SIZE = 100;

/**
 * Splits the images to delete into BatchDeleteImage calls. ECR refuses to delete a manifest while an index
 * still references it (`ImageReferencedByManifestList`), and does not promise to honour the order of ids inside
 * one call, so an index must go in an earlier call than its children. Greedy list scheduling, deepest chains
 * first: as few calls as the constraint allows — ceil(n / size) unless the deletions are mostly parent/child pairs.
 * An index whose children are unknown (unreadable, or archived: it cannot be pulled) may reference any image but those
 * that reference it, so the indexes that reference one go first, then those indexes, in calls of their own, then the rest.
 * (No order can put each such index before all but its own ancestors: two readable indexes, each above another unknown
 * one, would have to precede each other. A reference this order misses is refused with ImageReferencedByManifestList,
 * reported, and deleted by a later run.)
 */
export function deletionBatches(images: readonly CacheImage[], size = DELETE_BATCH_SIZE): string[][] {
  const unknown = (image: CacheImage): boolean => image.isIndex && image.children === undefined;
  if (!images.some(unknown)) return orderedBatches(images, size);
  // Ancestors of an unknown index: walk up from each through the known parent → child links of the deletion set.
  const parentsOf = new Map<string, CacheImage[]>();
  for (const image of images) for (const d of image.children ?? []) parentsOf.set(d, [...(parentsOf.get(d) ?? []), image]);
  const ancestors = new Set<string>();
  const stack = images.filter(unknown).map(image => image.digest);
  while (stack.length > 0) {
    for (const parent of parentsOf.get(stack.pop()!) ?? []) {
      if (ancestors.has(parent.digest) || unknown(parent)) continue;
      ancestors.add(parent.digest);
      stack.push(parent.digest);
    }
  }
  const unknownBatches: string[][] = [];
  const unknowns = images.filter(unknown);
  for (let i = 0; i < unknowns.length; i += size) unknownBatches.push(unknowns.slice(i, i + size).map(image => image.digest));
  return [
    ...orderedBatches(images.filter(image => ancestors.has(image.digest)), size),
    ...unknownBatches,
    ...orderedBatches(images.filter(image => !unknown(image) && !ancestors.has(image.digest)), size),
  ];
}

function orderedBatches(images: readonly CacheImage[], size: number): string[][] {
  const n = images.length;
  const at = new Map<string, number>();
  for (let i = 0; i < n; i++) at.set(images[i].digest, i);

  // Parent → child edges inside the deletion set, in compressed arrays (100k deletions, mostly without children).
  const childStart = new Int32Array(n + 1);
  const childList: number[] = [];
  const parents = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    childStart[i] = childList.length;
    for (const d of images[i].children ?? []) {
      const j = at.get(d);
      if (j === undefined || j === i) continue;
      childList.push(j);
      parents[j]++;
    }
  }
  childStart[n] = childList.length;
  if (childList.length === 0) {
    const batches: string[][] = [];
    for (let i = 0; i < n; i += size) batches.push(images.slice(i, i + size).map(image => image.digest));
    return batches;
  }

  // height = the longest chain of children below an image: those must start first or the chain costs extra calls.
  const parentStart = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) parentStart[i + 1] = parentStart[i] + parents[i];
  const parentList = new Int32Array(childList.length);
  const fill = parentStart.slice(0, n);
  for (let i = 0; i < n; i++) for (let k = childStart[i]; k < childStart[i + 1]; k++) parentList[fill[childList[k]]++] = i;
  const height = new Int32Array(n);
  const pending = new Int32Array(n);
  const leaves: number[] = [];
  for (let i = 0; i < n; i++) {
    pending[i] = childStart[i + 1] - childStart[i];
    if (pending[i] === 0) leaves.push(i);
  }
  while (leaves.length > 0) {
    const j = leaves.pop()!;
    for (let k = parentStart[j]; k < parentStart[j + 1]; k++) {
      const i = parentList[k];
      height[i] = Math.max(height[i], height[j] + 1);
      if (--pending[i] === 0) leaves.push(i);
    }
  }

  // One FIFO per height, read through a cursor: Array.shift() would make 100k deletions quadratic.
  const ready: number[][] = [];
  const cursor: number[] = [];
  const enqueue = (i: number): void => {
    if (ready[height[i]] === undefined) {
      ready[height[i]] = [];
      cursor[height[i]] = 0;
    }
    ready[height[i]].push(i);
  };
  for (let i = 0; i < n; i++) if (parents[i] === 0) enqueue(i);
  const batches: string[][] = [];
  const done = new Uint8Array(n);
  let scheduled = 0;
  while (scheduled < n) {
    const batch: number[] = [];
    for (let h = ready.length - 1; h >= 0 && batch.length < size; h--) {
      const bucket = ready[h];
      while (bucket !== undefined && cursor[h] < bucket.length && batch.length < size) batch.push(bucket[cursor[h]++]);
    }
    if (batch.length === 0) {
      // Only a reference cycle gets here, which content addressing rules out; delete the rest rather than loop.
      for (let i = 0; i < n && batch.length < size; i++) if (!done[i]) batch.push(i);
    }
    for (const i of batch) done[i] = 1;
    scheduled += batch.length;
    for (const i of batch) {
      for (let k = childStart[i]; k < childStart[i + 1]; k++) {
        const j = childList[k];
        if (--parents[j] === 0 && !done[j]) enqueue(j);
      }
    }
    batches.push(batch.map(i => images[i].digest));
  }
  return batches;
}
