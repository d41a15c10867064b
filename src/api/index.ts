/** The contract's kinds, their zod schemas and the rules they share with the CRDs. */
export * from './condition.ts';
export * from './group.ts';
export * from './harouter.ts';
export * from './harouterstate.ts';
export * from './micro-time.ts';
export * from './observed-at.ts';
export * from './validation.ts';
export * from './vrid-claim.ts';
export * from './vrrp.ts';
