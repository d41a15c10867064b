/**
 * VRID allocation, the shell: creates and deletes the claim Leases that `vrid.ts` reasons about.
 *
 * A VRID belongs to the router whose claim Lease exists: creating the Lease is atomic in the API
 * server, so two allocators with caches of their own (two operators, or a leader and the one that
 * follows it) never hand one VRID to two routers; an `AlreadyExists` answer means taken, and the
 * next free VRID is tried. The router records its VRID in `status.vrrp` (through the reconciler's
 * status write) only after it holds the claim. Claims a router no longer needs, and those of
 * routers that are gone, are deleted (with a uid precondition, so that a claim made again since
 * is never deleted).
 */
import {
  claimLease,
  claimOf,
  type HARouter,
  type LeaseObject,
  type VRIDClaim,
  vridHolder,
  vridLeaseName,
} from '../api/index.ts';
import { CLAIMS_BY_HOLDER, CLAIMS_BY_SEGMENT, ROUTERS_BY_SEGMENT } from '../controller/indexes.ts';
import { routerKey } from '../controller/router-key.ts';
import type { RawRequester } from '../kube/client.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../kube/errors.ts';
import type { Logger } from '../log.ts';
import type { IndexedStore } from '../runtime/store.ts';
import { claimsToRelease, keptVRID, lowestFreeVRID, type VRIDOutcome } from './vrid.ts';

/** How long a claim this allocator made counts while its cache does not show it (a watch lags by far less). */
const RECENT_TTL_MS = 60_000;
/** The holder reported for a claim that exists but could not be read (deleted in between, malformed). */
export const UNKNOWN_HOLDER = '(unknown)';

/** What the allocator reads and writes with. */
export interface VRIDAllocatorOptions {
  raw: RawRequester;
  /** The claim Leases (label `harouter.dev/vrid-claim=true` in `namespace`), indexed by holder and segment. */
  claims: IndexedStore<LeaseObject>;
  /** The HARouters, indexed by segment (for VRIDs set by hand, which allocation avoids). */
  routers: IndexedStore<HARouter>;
  /** The operator's namespace, where the claims live. */
  namespace: string;
  /** VRIDs never allocated (`--vrrp-reserved-vrids`). */
  reserved: readonly number[];
}

/** Allocates, keeps and releases the VRIDs of routers with `spec.vrrp` (see the module comment). */
export class VRIDAllocator {
  readonly #options: VRIDAllocatorOptions;
  readonly #reserved: ReadonlySet<number>;
  readonly #path: string;
  /** Claims this allocator created or confirmed that its cache may not show yet, by Lease name. */
  readonly #recent = new Map<string, VRIDClaim & { at: number }>();
  /** The names in `#recent` by holder, so that a reconcile looks up its own in O(1). */
  readonly #recentByHolder = new Map<string, Set<string>>();
  /** Claims this allocator deleted that its cache may still show, by Lease name (with the uid deleted). */
  readonly #released = new Map<string, string | undefined>();

  constructor(options: VRIDAllocatorOptions) {
    this.#options = options;
    this.#reserved = new Set(options.reserved);
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`;
  }

  /**
   * The VRID outcome of a router (undefined without `spec.vrrp`): keeps its recorded VRID,
   * claims a VRID set by hand, or allocates the lowest free one; releases the claims it no
   * longer needs. Throws on API errors other than the expected ones (the key is retried).
   */
  async ensure(router: HARouter, log: Logger): Promise<VRIDOutcome | undefined> {
    const namespace = router.metadata.namespace ?? '';
    const routerId = router.metadata.name;
    const held = this.#held(routerKey(namespace, routerId));
    const vrrp = router.spec.vrrp;
    if (!vrrp) {
      await this.#release(claimsToRelease(held, undefined), log);
      return undefined;
    }
    const { segment } = vrrp;
    let outcome: VRIDOutcome;
    const kept = keptVRID(vrrp, router.status?.vrrp, held);
    if (kept !== undefined) {
      outcome = { kind: 'recorded', segment, vrid: kept };
      if (!held.some((c) => c.segment === segment && c.vrid === kept)) {
        const holder = await this.#claim(segment, kept, namespace, routerId);
        if (holder !== undefined) {
          log.warn({ segment, vrid: kept, holder }, 'the claim of a recorded VRID is held by another router');
        }
      }
    } else if (vrrp.vrid !== undefined) {
      const holder = await this.#claim(segment, vrrp.vrid, namespace, routerId);
      outcome =
        holder === undefined
          ? { kind: 'recorded', segment, vrid: vrrp.vrid }
          : { kind: 'conflict', segment, vrid: vrrp.vrid, holder };
    } else {
      outcome = await this.#allocate(segment, namespace, routerId, log);
    }
    const keep = outcome.kind === 'recorded' ? outcome : undefined;
    await this.#release(claimsToRelease(held, keep), log);
    return outcome;
  }

  /** Deletes every claim of a router that is gone (`namespace/routerId`). */
  async releaseAll(key: string, log: Logger): Promise<void> {
    await this.#release(this.#held(key), log);
  }

  /** The claims the cache shows (or this allocator made) for `key`, minus those it released. */
  #held(key: string): VRIDClaim[] {
    const byName = new Map<string, VRIDClaim>();
    for (const lease of this.#options.claims.byIndex(CLAIMS_BY_HOLDER, key)) {
      const claim = this.#fresh(claimOf(lease));
      if (claim?.holder === key) byName.set(claim.name, claim);
    }
    for (const name of this.#recentByHolder.get(key) ?? []) {
      const claim = this.#recentClaim(name);
      if (claim && !byName.has(name)) byName.set(name, claim);
    }
    return [...byName.values()];
  }

  /** A claim this allocator made, while it counts (see RECENT_TTL_MS). */
  #recentClaim(name: string): VRIDClaim | undefined {
    const claim = this.#recent.get(name);
    if (claim && claim.at < Date.now() - RECENT_TTL_MS) this.#forgetRecent(name);
    return this.#recent.get(name);
  }

  #rememberRecent(claim: VRIDClaim): void {
    this.#recent.set(claim.name, { ...claim, at: Date.now() });
    const names = this.#recentByHolder.get(claim.holder) ?? new Set<string>();
    names.add(claim.name);
    this.#recentByHolder.set(claim.holder, names);
  }

  #forgetRecent(name: string): void {
    const claim = this.#recent.get(name);
    if (!claim) return;
    this.#recent.delete(name);
    const names = this.#recentByHolder.get(claim.holder);
    names?.delete(name);
    if (names?.size === 0) this.#recentByHolder.delete(claim.holder);
  }

  /** A cached claim as far as this allocator knows: undefined when it released it since. */
  #fresh(claim: VRIDClaim | undefined): VRIDClaim | undefined {
    if (!claim) return undefined;
    const recent = this.#recent.get(claim.name);
    if (recent && recent.uid === claim.uid) this.#forgetRecent(claim.name);
    if (this.#released.has(claim.name)) {
      if (this.#released.get(claim.name) === claim.uid) return undefined;
      this.#released.delete(claim.name);
    }
    return claim;
  }

  /** The VRIDs of `segment` that are claimed, or set by hand on a router, as far as the caches show. */
  #taken(segment: string, except: string): Set<number> {
    const taken = new Set<number>();
    for (const lease of this.#options.claims.byIndex(CLAIMS_BY_SEGMENT, segment)) {
      const claim = this.#fresh(claimOf(lease));
      if (claim?.segment === segment) taken.add(claim.vrid);
    }
    for (const name of [...this.#recent.keys()]) {
      const claim = this.#recentClaim(name);
      if (claim?.segment === segment) taken.add(claim.vrid);
    }
    for (const router of this.#options.routers.byIndex(ROUTERS_BY_SEGMENT, segment)) {
      const vrid = router.spec?.vrrp?.vrid;
      const key = routerKey(router.metadata.namespace ?? '', router.metadata.name);
      if (vrid !== undefined && key !== except && router.spec.vrrp?.segment === segment) taken.add(vrid);
    }
    return taken;
  }

  async #allocate(segment: string, namespace: string, routerId: string, log: Logger): Promise<VRIDOutcome> {
    const taken = this.#taken(segment, routerKey(namespace, routerId));
    for (;;) {
      const vrid = lowestFreeVRID(taken, this.#reserved);
      if (vrid === undefined) return { kind: 'exhausted', segment };
      const holder = await this.#claim(segment, vrid, namespace, routerId);
      if (holder === undefined) {
        log.info({ segment, vrid }, 'allocated a VRID');
        return { kind: 'recorded', segment, vrid };
      }
      log.debug({ segment, vrid, holder }, 'VRID taken meanwhile; trying the next');
      taken.add(vrid);
    }
  }

  /**
   * Claims `vrid` of `segment` for the router: undefined when the router holds it (now or
   * already), else the holder that does.
   */
  async #claim(
    segment: string,
    vrid: number,
    namespace: string,
    routerId: string,
  ): Promise<string | undefined> {
    const me = vridHolder(namespace, routerId);
    const name = vridLeaseName(segment, vrid);
    const cached = this.#fresh(claimOf(this.#options.claims.get(`${this.#options.namespace}/${name}`)));
    const known = cached ?? this.#recentClaim(name);
    if (known) return known.holder === me ? undefined : known.holder;
    let lease: LeaseObject;
    try {
      lease = (await this.#options.raw({
        method: 'POST',
        path: this.#path,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          ...claimLease(segment, vrid, namespace, routerId),
        },
      })) as LeaseObject;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      try {
        lease = (await this.#options.raw({ path: `${this.#path}/${name}` })) as LeaseObject;
      } catch (getErr) {
        // Deleted between the two requests: taken a moment ago, so let the caller try another.
        if (isNotFound(getErr)) return UNKNOWN_HOLDER;
        throw getErr;
      }
    }
    const claim = claimOf(lease);
    if (!claim) return UNKNOWN_HOLDER;
    this.#forgetRecent(name);
    this.#rememberRecent(claim);
    this.#released.delete(name);
    return claim.holder === me ? undefined : claim.holder;
  }

  async #release(claims: readonly VRIDClaim[], log: Logger): Promise<void> {
    for (const claim of claims) {
      try {
        await this.#options.raw({
          method: 'DELETE',
          path: `${this.#path}/${claim.name}`,
          body: {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            ...(claim.uid ? { preconditions: { uid: claim.uid } } : {}),
          },
        });
        log.info({ segment: claim.segment, vrid: claim.vrid }, 'released a VRID claim');
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
      this.#forgetRecent(claim.name);
      this.#released.set(claim.name, claim.uid);
    }
  }
}
