/**
 * INTERIM: the HARouter fields of API.md's "Driving keepalived" (`spec.vrrp`,
 * `status.vrrp`, `status.agents[].fenced`) and the priority rule, until the API
 * module exports them. Replaced by `src/api` when those land.
 */
import { z } from 'zod';
import {
  agentStatusSchema,
  harouterSchema,
  harouterSpecSchema,
  harouterStatusSchema,
} from '../api/harouter.ts';

export const vrrpSpecSchema = z.object({
  segment: z.string().optional(),
  vrid: z.number().int().optional(),
  interface: z.string(),
  virtualIPs: z.array(z.string()),
  advertIntervalMs: z.number().int().optional(),
});

export const vrrpHarouterSchema = harouterSchema.extend({
  spec: harouterSpecSchema.extend({ vrrp: vrrpSpecSchema.optional() }),
  status: harouterStatusSchema
    .extend({
      vrrp: z.object({ vrid: z.number().int(), segment: z.string().optional() }).optional(),
      agents: z.array(agentStatusSchema.extend({ fenced: z.boolean().optional() })).optional(),
    })
    .optional(),
});

export type VrrpHARouter = z.infer<typeof vrrpHarouterSchema>;

/** The default advert interval. */
export const DEFAULT_ADVERT_INTERVAL_MS = 1000;

/** An agent's keepalived priority: its `priority`, else 200 minus 10 per position. */
export function effectivePriority(router: VrrpHARouter, agent: string): number | undefined {
  const index = router.spec.agents.findIndex((a) => a.name === agent);
  if (index < 0) return undefined;
  return router.spec.agents[index]?.priority ?? 200 - 10 * index;
}
