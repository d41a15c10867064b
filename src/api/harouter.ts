import { z } from 'zod';
import { conditionSchema } from './condition.ts';
import {
  AGENT_MAX_LENGTH,
  codePointLength,
  DISPLAY_NAME_MAX_CODE_POINTS,
  DNS_LABEL_PATTERN,
  DNS_SUBDOMAIN_PATTERN,
  isPrintable,
  UUID_PATTERN,
} from './validation.ts';
import { effectivePriority, vrrpSchema, vrrpStatusSchema } from './vrrp.ts';

/** An agent's state as the operator decides it. `Unknown` always carries a reason. */
export const AGENT_STATES = ['Primary', 'Backup', 'Fault', 'Stopped', 'Unknown'] as const;
export type AgentState = (typeof AGENT_STATES)[number];
/** Why an agent is `Unknown`. */
export const UNKNOWN_REASONS = ['NoReport', 'NodeNotFound', 'NodeNotReady'] as const;
export type UnknownReason = (typeof UNKNOWN_REASONS)[number];

export const agentName = z.string().min(1).max(AGENT_MAX_LENGTH).regex(new RegExp(DNS_SUBDOMAIN_PATTERN));

export const harouterAgentSchema = z.object({
  name: agentName,
  priority: z.number().int().min(1).max(254).optional(),
});

export const endpointPortSchema = z.object({
  name: z
    .string()
    .max(63)
    .regex(new RegExp(DNS_LABEL_PATTERN), {
      message: 'port name rule: must be a DNS-1123 label (as in an EndpointSlice)',
    })
    .optional(),
  port: z.number().int().min(1).max(65535),
  protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
});

export const harouterEndpointSchema = z.object({
  serviceName: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/),
  ports: z.array(endpointPortSchema).min(1).max(32),
});

const harouterSpecBaseSchema = z.object({
  displayName: z
    .string()
    .refine((s) => codePointLength(s) <= DISPLAY_NAME_MAX_CODE_POINTS && isPrintable(s), {
      message: 'displayName must be at most 64 printable characters',
    })
    .optional(),
  agents: z
    .array(harouterAgentSchema)
    .min(1)
    .max(16)
    .refine((agents) => new Set(agents.map((a) => a.name)).size === agents.length, {
      message: 'agents must be unique by name',
    }),
  endpoint: harouterEndpointSchema.optional(),
  vrrp: vrrpSchema.optional(),
  preferredAgent: agentName.optional(),
});

/** The rules across spec fields, shared in words with the CRD's CEL rules (see `crds.ts`). */
export function specRefusal(spec: z.infer<typeof harouterSpecBaseSchema>): string | undefined {
  if (spec.preferredAgent !== undefined) {
    if (!spec.vrrp) return 'preferred agent rule: spec.preferredAgent needs spec.vrrp';
    if (!spec.agents.some((a) => a.name === spec.preferredAgent)) {
      return 'preferred agent rule: spec.preferredAgent must be listed in spec.agents';
    }
  }
  if (spec.vrrp) {
    const priorities = spec.agents.map((a) => effectivePriority(spec.agents, a.name));
    if (new Set(priorities).size !== priorities.length) {
      return "distinct priorities rule: with spec.vrrp, the agents' priorities (default 200 minus 10 per position) must differ";
    }
  }
  return undefined;
}

export const harouterSpecSchema = harouterSpecBaseSchema.superRefine((spec, ctx) => {
  const refusal = specRefusal(spec);
  if (refusal) ctx.addIssue({ code: 'custom', message: refusal });
});

export const agentStatusSchema = z.object({
  name: z.string(),
  state: z.enum(AGENT_STATES),
  observedAt: z.string().optional(),
  priority: z.number().int().optional(),
  reason: z.enum(UNKNOWN_REASONS).optional(),
  fenced: z.boolean().optional(),
});

export const harouterStatusSchema = z.object({
  activeAgent: z.string().optional(),
  activeSince: z.string().optional(),
  agents: z.array(agentStatusSchema).optional(),
  liveAgents: z.number().int().min(0).optional(),
  transitions: z.number().int().min(0).optional(),
  lastTransitionTime: z.string().optional(),
  observedGeneration: z.number().int().optional(),
  conditions: z.array(conditionSchema).optional(),
  vrrp: vrrpStatusSchema.optional(),
});

export const objectMetaSchema = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
});

/** A HARouter as read from the API server (unknown fields kept). */
export const harouterSchema = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMetaSchema.extend({ name: z.string().regex(new RegExp(UUID_PATTERN)) }),
  spec: harouterSpecSchema,
  status: harouterStatusSchema.optional(),
});

export type HARouterAgent = z.infer<typeof harouterAgentSchema>;
export type HARouterEndpoint = z.infer<typeof harouterEndpointSchema>;
export type HARouterSpec = z.infer<typeof harouterSpecSchema>;
export type AgentStatus = z.infer<typeof agentStatusSchema>;
export type HARouterStatus = z.infer<typeof harouterStatusSchema>;
export type HARouter = z.infer<typeof harouterSchema>;
