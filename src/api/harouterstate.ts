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
  OBSERVED_AT_MAX_LENGTH,
  stateObjectName,
  UUID_PATTERN,
} from './validation.ts';

/** States an agent may report. */
export const REPORTED_STATES = ['Primary', 'Backup', 'Fault', 'Stopped'] as const;
export type ReportedState = (typeof REPORTED_STATES)[number];

/** Reasons of `Accepted=False` on a HARouterState. */
export const NOT_ACCEPTED_REASONS = ['UnknownRouter', 'NotAMember'] as const;
export type NotAcceptedReason = (typeof NOT_ACCEPTED_REASONS)[number];

/** `HARouterState.spec`: the report, with the CRD's field rules (same constants, same messages). */
export const harouterStateSpecSchema = z.object({
  routerId: z.string().regex(new RegExp(UUID_PATTERN), {
    message: 'router id rule: routerId must be a lower-case canonical UUID',
  }),
  agent: z.string().min(1).max(AGENT_MAX_LENGTH).regex(new RegExp(DNS_SUBDOMAIN_PATTERN), {
    message: 'agent name rule: must be a node name (DNS-1123 subdomain)',
  }),
  state: z.enum(REPORTED_STATES, { message: `state rule: must be one of ${REPORTED_STATES.join(', ')}` }),
  observedAt: z
    .string()
    .max(OBSERVED_AT_MAX_LENGTH)
    .refine((v) => parseObservedAt(v) !== undefined, {
      message: 'time rule: observedAt must be an RFC 3339 time',
    }),
  priority: z.number().int().min(0).max(255).optional(),
  message: z
    .string()
    .refine((s) => codePointLength(s) <= MESSAGE_MAX_CODE_POINTS, {
      message: 'length rule: message must be at most 256 characters',
    })
    .refine(isPrintable, {
      message: 'printable rule: message must not contain control or bidirectional-control characters',
    })
    .optional(),
});

/** `HARouterState.status`, written by the operator only. */
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

/**
 * A HARouterState as admission sees it: the schema above plus the CRD's root rule,
 * `metadata.name` equal to `<spec.routerId>.<spec.agent>`. Accepts exactly what the
 * CRD accepts on CREATE (`test/integration/crd-schema.test.ts` runs one corpus through both).
 */
export const harouterStateObjectSchema = harouterStateSchema.superRefine((obj, ctx) => {
  if (obj.metadata.name !== stateObjectName(obj.spec.routerId, obj.spec.agent)) {
    ctx.addIssue({
      code: 'custom',
      path: ['metadata', 'name'],
      message: 'name rule: metadata.name must be <spec.routerId>.<spec.agent>',
    });
  }
});
