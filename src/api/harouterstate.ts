import { z } from 'zod';
import { conditionSchema } from './condition.ts';
import { objectMetaSchema } from './harouter.ts';
import { parseObservedAt } from './observed-at.ts';
import {
  AGENT_MAX_LENGTH,
  codePointLength,
  DNS_SUBDOMAIN_PATTERN,
  isPrintable,
  MESSAGE_MAX_CODE_POINTS,
  UUID_PATTERN,
} from './validation.ts';

/** States an agent may report. */
export const REPORTED_STATES = ['Primary', 'Backup', 'Fault', 'Stopped'] as const;
export type ReportedState = (typeof REPORTED_STATES)[number];

/** Reasons of `Accepted=False` on a HARouterState. */
export const NOT_ACCEPTED_REASONS = ['UnknownRouter', 'NotAMember'] as const;
export type NotAcceptedReason = (typeof NOT_ACCEPTED_REASONS)[number];

export const harouterStateSpecSchema = z.object({
  routerId: z
    .string()
    .regex(new RegExp(UUID_PATTERN), { message: 'routerId must be a lower-case canonical UUID' }),
  agent: z
    .string()
    .min(1)
    .max(AGENT_MAX_LENGTH)
    .regex(new RegExp(DNS_SUBDOMAIN_PATTERN), {
      message: 'agent must be a DNS-1123 subdomain (a node name)',
    }),
  state: z.enum(REPORTED_STATES),
  observedAt: z
    .string()
    .refine((v) => parseObservedAt(v) !== undefined, { message: 'observedAt must be an RFC 3339 time' }),
  priority: z.number().int().min(0).max(255).optional(),
  message: z
    .string()
    .refine((s) => codePointLength(s) <= MESSAGE_MAX_CODE_POINTS, {
      message: 'message must be at most 256 characters',
    })
    .refine(isPrintable, { message: 'message must be printable (no control or bidirectional characters)' })
    .optional(),
});

export const harouterStateStatusSchema = z.object({
  conditions: z.array(conditionSchema).optional(),
  observedGeneration: z.number().int().optional(),
});

/** A HARouterState as read from the API server (unknown fields kept). */
export const harouterStateSchema = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMetaSchema,
  spec: harouterStateSpecSchema,
  status: harouterStateStatusSchema.optional(),
});

export type HARouterStateSpec = z.infer<typeof harouterStateSpecSchema>;
export type HARouterState = z.infer<typeof harouterStateSchema>;
