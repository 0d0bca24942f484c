import { createHash } from 'crypto';
import { resolvePolicy } from '../../../lambda/cache-cleanup/config';
import { CleanupPolicy, ResolvedCleanupPolicy } from '../../../lambda/cache-cleanup/contract';
import { CacheImage } from '../../../lambda/cache-cleanup/plan';
import { BuildUsage } from '../../../lambda/cache-cleanup/usage';

export const HOUR = 3600 * 1000;
export const DAY = 24 * HOUR;
export const NOW = Date.UTC(2025, 5, 1, 12);

export function digestOf(name: string): string {
  return `sha256:${createHash('sha256').update(name).digest('hex')}`;
}

/** A 64-hex buildah step tag. */
export function stepTag(name: string): string {
  return createHash('sha256').update(`step:${name}`).digest('hex');
}

export function image(name: string, fields: Partial<Omit<CacheImage, 'digest'>> = {}): CacheImage {
  return { digest: digestOf(name), tags: [], sizeBytes: 100, pushedAt: NOW - 30 * DAY, isIndex: false, ...fields };
}

export function index(name: string, children: readonly CacheImage[] | undefined, fields: Partial<Omit<CacheImage, 'digest'>> = {}): CacheImage {
  return image(name, { isIndex: true, children: children?.map(c => c.digest), ...fields });
}

export function policy(overrides: Partial<CleanupPolicy> = {}): ResolvedCleanupPolicy {
  return resolvePolicy({ defaultBranchTag: 'main', ...overrides });
}

/** Build history that says when each tag was last read or written; `more` adds what else the history says. */
export function usage(entries: Record<string, number> = {}, more: Omit<Partial<BuildUsage>, 'historyAvailable' | 'lastUseByTag'> = {}): BuildUsage {
  return { historyAvailable: true, lastUseByTag: new Map(Object.entries(entries)), ...more };
}
