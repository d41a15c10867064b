import { z } from 'zod';

/**
 * `admission.k8s.io/v1` AdmissionReview, as the API server sends it. Only the
 * fields the policy reads are typed; `object` and `oldObject` stay unknown and
 * are validated by the policy itself (a malformed object is a decision, not a
 * malformed request).
 */
export const userInfoSchema = z.object({
  username: z.string().max(1024).optional(),
  uid: z.string().optional(),
  groups: z.array(z.string()).max(1024).optional(),
  extra: z.record(z.string(), z.array(z.string())).optional(),
});
export type UserInfo = z.infer<typeof userInfoSchema>;

const groupVersionResource = z.object({ group: z.string(), version: z.string(), resource: z.string() });

/** The operations an AdmissionReview may carry. */
export const ADMISSION_OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;

/** The `request` of an AdmissionReview: the fields the policy reads, typed (the objects stay unknown). */
export const admissionRequestSchema = z.object({
  uid: z.string().min(1).max(128),
  kind: z.object({ group: z.string(), version: z.string(), kind: z.string() }).optional(),
  resource: groupVersionResource,
  subResource: z.string().optional(),
  requestKind: z.object({ group: z.string(), version: z.string(), kind: z.string() }).optional(),
  requestResource: groupVersionResource.optional(),
  name: z.string().optional(),
  namespace: z.string().optional(),
  operation: z.enum(ADMISSION_OPERATIONS),
  userInfo: userInfoSchema,
  object: z.unknown().optional(),
  oldObject: z.unknown().optional(),
  dryRun: z.boolean().optional(),
});
export type AdmissionRequest = z.infer<typeof admissionRequestSchema>;

/** A whole `admission.k8s.io/v1` AdmissionReview; anything else is a malformed request (HTTP 400). */
export const admissionReviewSchema = z.object({
  apiVersion: z.literal('admission.k8s.io/v1'),
  kind: z.literal('AdmissionReview'),
  request: admissionRequestSchema,
});
export type AdmissionReview = z.infer<typeof admissionReviewSchema>;

/** The `response` part of an AdmissionReview. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason: string; message: string };
}

/** The node a pod-bound service-account token was issued for, when the request carries one. */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
