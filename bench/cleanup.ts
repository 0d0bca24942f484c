/**
 * `npm run bench:cleanup`: one cleanup run over a synthetic cache repository of 100,000 images (200 branches,
 * 10,000 builds, archived images, buildah step chains, builds still running), through the real handler and real SDK
 * clients whose requests are answered in-process, after a fixed latency, by the strict ECR and CodeBuild fakes of
 * test/fakes/ (the ones the unit tests use, which refuse every call the services would refuse). Prints a Markdown table
 * and a machine-readable last line.
 *
 * The fakes sit at the start of the SDK middleware stack (not aws-sdk-client-mock), and record no call inputs here:
 * sinon, or a log of every call, would keep the arguments alive and inflate the memory being measured.
 */
import { branchTag } from '../lib/build-script/cache-refs';
import { resolvePolicy } from '../lambda/cache-cleanup/config';
import { DeleteReason, KeepReason } from '../lambda/cache-cleanup/contract';
import { runCleanup } from '../lambda/cache-cleanup/index';
import { CleanupReport } from '../lambda/cache-cleanup/report';
import { FakeBuild, FakeCodeBuild } from '../test/fakes/codebuild';
import { FakeEcr, FakeImage, OCI_INDEX, OCI_MANIFEST } from '../test/fakes/ecr';

const IMAGES = 100_000;
const BRANCHES = 200;
const BUILDS = 10_000;
const LATENCY_MS = 2;
/** What CacheCleanup is assumed to configure: the target for peak memory. */
const FUNCTION_MEMORY_MB = 512;
const PLANNER_TARGET_MS = 1000;

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2025, 5, 1, 12);
const IDLE_DAYS = 14;

/** mulberry32: a seeded generator, so every run benchmarks the same repository. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(20250601);
const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo));
let digestCounter = 0;
const nextDigest = (): string => `sha256:${(++digestCounter).toString(16).padStart(64, '0')}`;
const hex64 = (): string => Array.from({ length: 8 }, () => Math.floor(random() * 2 ** 32).toString(16).padStart(8, '0')).join('');

interface Synthetic {
  images: FakeImage[];
  children: Map<string, string[]>;
  /** Newest first. */
  builds: FakeBuild[];
  defaultTag: string;
  /** The refs main's newest build used (step tags when it was a buildah-style build): the default branch's protected cache. */
  defaultRefs: string[];
  /** Branch tags of the builds in progress: in use. */
  runningTags: string[];
  /** Archived indexes (their children unknown to the cleanup): they go in calls of their own, before the rest. */
  archivedIndexes: string[];
}

const STEP_CHAINS = 500;
const STEPS_PER_CHAIN = 8;
const RUNNING_BUILDS = 3;
const ARCHIVED = 1000;
const ARCHIVED_INDEXES = 100;

/**
 * A repository that was never cleaned: per branch its current cache plus the manifests overwrites left untagged (for
 * a hundred branches an index: image + attestation), untagged indexes, 1,000 archived images and 100 archived indexes,
 * buildah step tags (500 chains of 8 steps that builds read and wrote, and loose ones for the rest); builds over 30
 * days that read their branch and main, 60% of them writing, one in five exporting buildah step tags, and three builds
 * still running on idle branches.
 */
function synthesize(): Synthetic {
  const defaultTag = branchTag('main');
  const branches = Array.from({ length: BRANCHES }, (_, k) => {
    const name = k === 0 ? 'main' : `feature/${k}-${hex64().slice(0, 6)}`;
    const lastActive = k === 0 ? NOW - HOUR : NOW - between(0, 45) * DAY - between(0, 24) * HOUR;
    return { name, tag: branchTag(name), chain: k % STEP_CHAINS, lastActive };
  });
  const chains = Array.from({ length: STEP_CHAINS }, () => Array.from({ length: STEPS_PER_CHAIN }, hex64));
  const builds: FakeBuild[] = [];
  const writes = new Map<string, number[]>();
  let defaultRefs: string[] | undefined;
  for (let b = 0; b < BUILDS; b++) {
    const start = NOW - Math.floor((b / BUILDS) * 30 * DAY) - HOUR;
    let branch = branches[0];
    for (let tries = 0; tries < 8 && random() > 0.3; tries++) {
      const candidate = branches[between(1, BRANCHES)];
      if (candidate.lastActive >= start) {
        branch = candidate;
        break;
      }
    }
    const wrote = random() < 0.6;
    let read = branch.tag === defaultTag ? defaultTag : `${branch.tag},${defaultTag}`;
    let written = wrote ? branch.tag : '';
    // One build in five is buildah-style, and so is main's newest, so that its steps are the protected default cache.
    if (random() < 0.2 || (branch.tag === defaultTag && defaultRefs === undefined)) {
      // buildah: the steps it pulled, base first, then the steps it pushed (content-addressed, in the branch's chain).
      const chain = chains[branch.chain];
      const hits = wrote ? between(0, STEPS_PER_CHAIN) : STEPS_PER_CHAIN;
      read = chain.slice(0, hits).join(',');
      written = chain.slice(hits).join(',');
    } else if (wrote) {
      writes.set(branch.tag, [...(writes.get(branch.tag) ?? []), start + 10 * 60_000]);
    }
    if (branch.tag === defaultTag) defaultRefs ??= [...new Set([...read.split(','), ...written.split(',')])].filter(ref => ref !== '');
    builds.push({
      id: `app-build:${BUILDS - b}`,
      buildNumber: BUILDS - b,
      startTime: start,
      endTime: start + 10 * 60_000,
      environmentVariables: [{ name: 'CACHE_BRANCH', value: branch.name }],
      exportedEnvironmentVariables: [{ name: 'CACHE_REFS_READ', value: read }, { name: 'CACHE_REF_WRITTEN', value: written }],
    });
  }
  // Builds in progress (no exports yet) on the branches idle the longest.
  const idle = [...branches].sort((x, y) => x.lastActive - y.lastActive).slice(0, RUNNING_BUILDS);
  idle.forEach((branch, k) => builds.unshift({
    id: `app-build:${BUILDS + 1 + k}`, buildNumber: BUILDS + 1 + k, startTime: NOW - (5 - k) * 60_000,
    environmentVariables: [{ name: 'CACHE_BRANCH', value: branch.name }],
  }));

  const images: FakeImage[] = [];
  const children = new Map<string, string[]>();
  const archivedIndexes: string[] = [];
  const add = (tags: string[], pushedAt: number, size: number, fields: Partial<Omit<FakeImage, 'digest'>> = {}): string => {
    const digest = nextDigest();
    images.push({ digest, tags, sizeBytes: size, pushedAt, mediaType: OCI_MANIFEST, ...fields });
    return digest;
  };
  const addIndex = (tags: string[], pushedAt: number, fields: Partial<Omit<FakeImage, 'digest'>> = {}): string => {
    // The parts share the index's status: an archived index is archived with what it references.
    const part = { status: fields.status, lastArchivedAt: fields.lastArchivedAt };
    const parts = [add([], pushedAt, between(200, 600) * 2 ** 20, part), add([], pushedAt, 12_000, part)];
    const digest = add(tags, pushedAt, 0, { mediaType: OCI_INDEX, children: parts, lastPulledAt: NOW - HOUR, ...fields });
    children.set(digest, parts);
    return digest;
  };
  branches.forEach((branch, k) => {
    const times = (writes.get(branch.tag) ?? []).sort((x, y) => x - y);
    const latest = times.pop() ?? branch.lastActive - between(0, 20) * DAY;
    if (k >= 21 && k < 121) addIndex([branch.tag], latest);
    else add([branch.tag], latest, between(300, 900) * 2 ** 20);
    for (const t of times) add([], t, between(300, 900) * 2 ** 20);
  });
  for (let k = 0; k < 1000; k++) addIndex([], NOW - between(2 * 24, 60 * 24) * HOUR);
  for (const chain of chains) for (const tag of chain) add([tag], NOW - between(0, 90 * 24) * HOUR, between(1, 200) * 2 ** 20);
  for (let k = 0; k < ARCHIVED; k++) {
    const lastArchivedAt = NOW - between(0, 180 * 24) * HOUR;
    add([hex64()], lastArchivedAt - between(30, 120) * DAY, between(1, 200) * 2 ** 20, { status: 'ARCHIVED', lastArchivedAt });
  }
  for (let k = 0; k < ARCHIVED_INDEXES; k++) {
    const lastArchivedAt = NOW - between(91, 180) * DAY;
    archivedIndexes.push(addIndex([], lastArchivedAt - 30 * DAY, { status: 'ARCHIVED', lastArchivedAt }));
  }
  while (images.length < IMAGES) {
    const pushedAt = NOW - between(0, 90 * 24) * HOUR;
    const pulled = random() < 0.7 ? pushedAt + Math.floor(random() * (NOW - pushedAt)) : undefined;
    add([hex64()], pushedAt, between(1, 200) * 2 ** 20, { lastPulledAt: pulled });
  }
  return { images, children, builds, defaultTag, defaultRefs: defaultRefs ?? [], runningTags: idle.map(b => b.tag), archivedIndexes };
}

const mb = (bytes: number): number => Math.round(bytes / 2 ** 20);

async function main(): Promise<void> {
  const repo = synthesize();
  const fakeEcr = new FakeEcr({ repositoryName: 'app-cache', images: repo.images, latencyMs: LATENCY_MS, recordRequests: false });
  const fakeCodeBuild = new FakeCodeBuild({
    projectName: 'app-build', builds: [...repo.builds].reverse(), latencyMs: LATENCY_MS, recordRequests: false,
  });
  const ecr = fakeEcr.client();
  const codebuild = fakeCodeBuild.client();
  const callsOf = (name: string): number => fakeEcr.callCount(name) + fakeCodeBuild.callCount(name);
  const policy = resolvePolicy({
    defaultBranchTag: repo.defaultTag, maxCacheBytes: 2 * 2 ** 40, maxDeletesPerRun: IMAGES, allowLargeDeletes: true,
  });

  global.gc?.();
  const baseline = process.memoryUsage();
  let peakHeap = baseline.heapUsed;
  let peakRss = baseline.rss;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakRss = Math.max(peakRss, m.rss);
  }, 5);
  const started = process.hrtime.bigint();
  let report: CleanupReport | undefined;
  await runCleanup(
    { repositoryName: 'app-cache', projectName: 'app-build', dryRun: false, metricsNamespace: 'Bench', policy },
    { ecr, codebuild, now: () => NOW, log: line => {
      if (report === undefined) report = JSON.parse(line) as CleanupReport;
    } },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);
  const r = report!;

  // The minimum, from the synthetic data and the plan's deletion count, independently of the adapters' paging:
  // - DescribeImages: every image in one listing (imageStatus ANY lists archived and restoring ones in the same pages);
  // - BatchGetImage: the active indexes, 100 a call (archived ones cannot be pulled, so are not read);
  // - the history: its pages up to the first one older than the window (main's newest build is inside it);
  // - BatchDeleteImage: 100 a call, and indexes whose children are unknown (archived) in calls of their own, before the rest.
  const since = NOW - IDLE_DAYS * DAY;
  const inWindow = repo.builds.filter(b => b.startTime! >= since).length;
  const historyPages = inWindow < repo.builds.length ? Math.floor(inWindow / 100) + 1 : Math.ceil(repo.builds.length / 100);
  const activeIndexes = [...repo.children.keys()].filter(d => !repo.archivedIndexes.includes(d)).length;
  const unknownDeleted = repo.archivedIndexes.filter(d => !fakeEcr.has(d)).length;
  const minimum: [string, number][] = [
    ['DescribeImages', Math.ceil(repo.images.length / 1000)],
    ['BatchGetImage', Math.ceil(activeIndexes / 100)],
    ['ListBuildsForProject', historyPages],
    ['BatchGetBuilds', historyPages],
    ['BatchDeleteImage', Math.ceil(unknownDeleted / 100) + Math.ceil((r.deleted - unknownDeleted) / 100)],
  ];
  const made = minimum.reduce((s, [name]) => s + callsOf(name), 0);
  const least = minimum.reduce((s, [, n]) => s + n, 0);

  // The run must also have been right: the default branch's cache (its tag and its newest buildah build's steps) and what
  // the running builds read are there, and no remaining index lost a child.
  const left = new Set(fakeEcr.images().flatMap(i => i.tags ?? []));
  const defaultLeft = left.has(repo.defaultTag) && repo.defaultRefs.every(t => left.has(t));
  const bytesLeft = (archived: boolean): number => fakeEcr.images().filter(i => (i.status === 'ARCHIVED') === archived).reduce((s, i) => s + (i.sizeBytes ?? 0), 0);
  const runningLeft = repo.runningTags.every(t => left.has(t));
  const brokenIndexes = [...repo.children].filter(([idx, kids]) => fakeEcr.has(idx) && kids.some(k => !fakeEcr.has(k))).length;

  const date = new Date().toISOString().slice(0, 10);
  console.log(`cleanup benchmark, ${date}, node ${process.version}: ${IMAGES.toLocaleString('en')} images, ${BRANCHES} branches, `
    + `${BUILDS.toLocaleString('en')} builds, ${LATENCY_MS} ms a call`);
  console.log('');
  console.log('| measure | result | minimum / target |');
  console.log('|---|---|---|');
  for (const [name, n] of minimum) console.log(`| ${name} calls | ${callsOf(name)} | ${n} |`);
  console.log(`| **API calls** | **${made}** | **${least}** |`);
  console.log(`| images deleted / kept | ${r.deleted.toLocaleString('en')} / ${r.kept.toLocaleString('en')} | failures: ${r.failures} |`);
  for (const reason of Object.values(DeleteReason)) console.log(`| deleted: ${reason} | ${r.deletedByReason[reason] ?? 0} | |`);
  const keptReasons = [
    KeepReason.NEWEST_DEFAULT_BRANCH, KeepReason.IN_USE_BY_RUNNING_BUILD, KeepReason.UNTAGGED_IN_GRACE, KeepReason.ARCHIVED_MINIMUM_STORAGE,
  ];
  for (const reason of keptReasons) console.log(`| kept: ${reason} | ${r.keptByReason[reason] ?? 0} | |`);
  const tib = (bytes: number): string => (bytes / 2 ** 40).toFixed(2);
  console.log(`| bytes reclaimed / cache left / archived left | ${tib(r.bytesReclaimed)} / ${tib(bytesLeft(false))} / ${tib(bytesLeft(true))} TiB `
    + '| budget 2.00 TiB (archived not counted) |');
  console.log(`| correctness | default branch's cache ${defaultLeft ? 'kept' : 'DELETED'} (${repo.defaultRefs.length} refs of its newest build), `
    + `running builds' refs ${runningLeft ? 'kept' : 'DELETED'}, ${brokenIndexes} broken indexes | kept, kept, 0 |`);
  console.log(`| planner CPU (plan + limits + batching) | ${r.plannerMs} ms | < ${PLANNER_TARGET_MS} ms |`);
  console.log(`| peak memory: RSS / heap (whole process) | ${mb(peakRss)} / ${mb(peakHeap)} MB | < ${FUNCTION_MEMORY_MB} MB |`);
  console.log(`| heap before the run (fake repository loaded) | ${mb(baseline.heapUsed)} MB | |`);
  console.log(`| total run time | ${seconds.toFixed(2)} s | |`);
  console.log('');
  console.log(`cleanup-bench: calls ${made}/${least}, planner ${r.plannerMs} ms for ${IMAGES} images, peak ${mb(peakRss)} MB`);
  const missed = made !== least || r.plannerMs >= PLANNER_TARGET_MS || mb(peakRss) >= FUNCTION_MEMORY_MB || !defaultLeft || !runningLeft
    || brokenIndexes > 0 || r.failures > 0;
  if (missed) process.exitCode = 1;
}

main().catch(e => {
  console.error(e);
  process.exitCode = 1;
});
