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

/** The defaults of `spec.vrrp`. */
export const VRRP_DEFAULTS = { advertIntervalMs: 1000 } as const;

/** An agent's keepalived priority: its `priority`, else 200 minus 10 per position. */
export function effectivePriority(
  agents: readonly { name: string; priority?: number | undefined }[],
  agent: string,
): number | undefined {
  const index = agents.findIndex((a) => a.name === agent);
  if (index < 0) return undefined;
  return agents[index]?.priority ?? 200 - 10 * index;
}
