/**
 * Stand-in CRDs for the kinds the chart renders from other operators (Prometheus Operator's
 * ServiceMonitor, PodMonitor and PrometheusRule, cert-manager's Certificate and Issuer), so that the API
 * server can dry-run them. They are NOT the upstream CRDs: each declares, with the upstream types
 * (monitoring.coreos.com/v1 and cert-manager.io/v1), only the fields the chart writes, with no
 * unknown fields allowed, so strict field validation catches a misspelt or misplaced field.
 * Validation that only the upstream schemas or those operators' webhooks do is not covered.
 */
const str = { type: 'string' };
const strMap = { type: 'object', additionalProperties: { type: 'string' } };
const labelSelector = {
  type: 'object',
  properties: { matchLabels: strMap },
};

const namespaceSelector = {
  type: 'object',
  properties: { any: { type: 'boolean' }, matchNames: { type: 'array', items: str } },
};
/** Prometheus Operator's duration format. */
const duration = {
  type: 'string',
  pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$',
};

function crd(group: string, kind: string, plural: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'harouter.dev/test-stand-in': 'true' } },
    spec: {
      group,
      scope: 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { spec: { type: 'object', ...spec } },
            },
          },
        },
      ],
    },
  };
}

export const STAND_IN_CRDS = [
  crd('monitoring.coreos.com', 'ServiceMonitor', 'servicemonitors', {
    required: ['selector'],
    properties: {
      selector: labelSelector,
      namespaceSelector,
      endpoints: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            port: str,
            path: str,
            interval: duration,
            scrapeTimeout: duration,
            honorLabels: { type: 'boolean' },
            scheme: { type: 'string', enum: ['http', 'https', 'HTTP', 'HTTPS'] },
            bearerTokenFile: str,
            tlsConfig: {
              type: 'object',
              properties: {
                ca: {
                  type: 'object',
                  properties: {
                    secret: {
                      type: 'object',
                      required: ['key'],
                      properties: { name: str, key: str, optional: { type: 'boolean' } },
                    },
                  },
                },
                serverName: str,
                insecureSkipVerify: { type: 'boolean' },
              },
            },
          },
        },
      },
    },
  }),
  crd('monitoring.coreos.com', 'PodMonitor', 'podmonitors', {
    required: ['selector'],
    properties: {
      selector: labelSelector,
      namespaceSelector,
      podMetricsEndpoints: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            port: str,
            path: str,
            interval: duration,
          },
        },
      },
    },
  }),
  crd('monitoring.coreos.com', 'PrometheusRule', 'prometheusrules', {
    properties: {
      groups: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string', minLength: 1 },
            interval: str,
            rules: {
              type: 'array',
              items: {
                type: 'object',
                required: ['expr'],
                properties: {
                  alert: str,
                  record: str,
                  expr: { 'x-kubernetes-int-or-string': true },
                  for: {
                    type: 'string',
                    pattern:
                      '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$',
                  },
                  labels: strMap,
                  annotations: strMap,
                },
              },
            },
          },
        },
      },
    },
  }),
  crd('cert-manager.io', 'Certificate', 'certificates', {
    required: ['issuerRef', 'secretName'],
    properties: {
      secretName: str,
      commonName: str,
      dnsNames: { type: 'array', items: str },
      duration: str,
      renewBefore: str,
      usages: {
        type: 'array',
        items: {
          type: 'string',
          enum: ['signing', 'digital signature', 'key encipherment', 'server auth', 'client auth'],
        },
      },
      privateKey: {
        type: 'object',
        properties: {
          algorithm: { type: 'string', enum: ['RSA', 'ECDSA', 'Ed25519'] },
          size: { type: 'integer' },
          rotationPolicy: { type: 'string', enum: ['Never', 'Always'] },
          encoding: { type: 'string', enum: ['PKCS1', 'PKCS8'] },
        },
      },
      issuerRef: {
        type: 'object',
        required: ['name'],
        properties: { name: str, kind: str, group: str },
      },
    },
  }),
  crd('cert-manager.io', 'Issuer', 'issuers', {
    properties: {
      selfSigned: { type: 'object', properties: { crlDistributionPoints: { type: 'array', items: str } } },
    },
  }),
];
