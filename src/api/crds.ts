import { GROUP, HAROUTER, HAROUTER_STATE, VERSION } from './group.ts';
import { AGENT_STATES, UNKNOWN_REASONS } from './harouter.ts';
import { NOT_ACCEPTED_REASONS, REPORTED_STATES } from './harouterstate.ts';
import {
  AGENT_MAX_LENGTH,
  DISPLAY_NAME_MAX_CODE_POINTS,
  DNS_LABEL_PATTERN,
  DNS_SUBDOMAIN_PATTERN,
  FORBIDDEN_TEXT_CLASS,
  MESSAGE_MAX_CODE_POINTS,
  OBSERVED_AT_MAX_LENGTH,
  RFC3339_PATTERN,
  STALE_REPORT_MESSAGE,
  UUID_PATTERN,
} from './validation.ts';
import { defaultPriority, INTERFACE_PATTERN, VRRP_DEFAULTS, VRRP_LIMITS } from './vrrp.ts';

/**
 * The two CustomResourceDefinitions of the contract, described in TypeScript and
 * written to `crds/*.yaml` (and the chart's copy) by `npm run generate:crds`.
 * Every rule OpenAPI and CEL can express lives here, built from the same constants
 * as the zod schemas (`validation.ts`); a unit test fails when the YAML files are
 * out of date and an integration test runs one corpus through both.
 *
 * CEL notes: patterns are passed as CEL raw strings (`r'...'`) so that RE2 sees the
 * same escapes as the OpenAPI pattern; a rule that mentions `oldSelf` is skipped on
 * CREATE, so the name rule and the immutability rules are separate; every list and
 * string is bounded so that the API server's cost estimate accepts the rules.
 */

// biome-ignore lint/suspicious/noExplicitAny: a JSON schema is an open-ended JSON value.
export type JSONSchemaProps = Record<string, any>;

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: see JSONSchemaProps.
  spec: Record<string, any>;
}

/** Quotes a regex as a CEL raw string literal. */
function celRegex(pattern: string): string {
  if (pattern.includes("'")) throw new Error('pattern must not contain a single quote');
  return `r'${pattern}'`;
}

/** The CEL expression that is true when `self` contains no forbidden (control, bidi) character. */
export const PRINTABLE_CEL = `!self.matches(${celRegex(FORBIDDEN_TEXT_CLASS)})`;

function str(description: string, extra: JSONSchemaProps = {}): JSONSchemaProps {
  return { type: 'string', description, ...extra };
}

function int(description: string, minimum: number, maximum: number): JSONSchemaProps {
  return { type: 'integer', format: 'int64', description, minimum, maximum };
}

function rule(expression: string, message: string, extra: JSONSchemaProps = {}): JSONSchemaProps {
  return { rule: expression, message, ...extra };
}

/** A standard `metav1.Condition`, as `kubebuilder` generates it. */
function conditionsSchema(description: string): JSONSchemaProps {
  return {
    type: 'array',
    description,
    maxItems: 8,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    items: {
      type: 'object',
      description: 'A standard Kubernetes condition (metav1.Condition).',
      required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
      properties: {
        type: str('Type of the condition, in CamelCase.', {
          maxLength: 316,
          pattern:
            '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
        }),
        status: str('Status of the condition: True, False or Unknown.', {
          enum: ['True', 'False', 'Unknown'],
        }),
        reason: str("A programmatic identifier of the condition's last transition, in CamelCase.", {
          minLength: 1,
          maxLength: 1024,
          pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
        }),
        message: str('A human-readable message about the transition.', { maxLength: 32768 }),
        lastTransitionTime: str('When the condition last changed status.', { format: 'date-time' }),
        observedGeneration: {
          type: 'integer',
          format: 'int64',
          minimum: 0,
          description: 'The metadata.generation the condition was set from.',
        },
      },
    },
  };
}

/** apiVersion, kind and metadata (which may carry nothing but its type). */
const TYPE_META_PROPERTIES: JSONSchemaProps = {
  apiVersion: str('APIVersion defines the versioned schema of this representation of an object.'),
  kind: str('Kind is a string value representing the REST resource this object represents.'),
  metadata: { type: 'object' },
};

const observedGenerationSchema: JSONSchemaProps = {
  type: 'integer',
  format: 'int64',
  minimum: 0,
  description: 'The metadata.generation of the spec the operator last acted on.',
};

const agentNameRules = [
  rule(
    `self.matches(${celRegex(DNS_SUBDOMAIN_PATTERN)})`,
    'agent name rule: must be a node name (DNS-1123 subdomain)',
  ),
];

const printableRules = (field: string) => [
  rule(
    PRINTABLE_CEL,
    `printable rule: ${field} must not contain control or bidirectional-control characters`,
  ),
];

/** An agent's effective priority in CEL (see `effectivePriority` in vrrp.ts): its own, or 200 - 10 x position. */
const celPriority = (agent: string) =>
  `(has(${agent}.priority) ? ${agent}.priority : ${defaultPriority(0)} - 10 * self.agents.indexOf(${agent}))`;

/** The rules across spec fields; `specRefusal` in harouter.ts says the same in zod. */
function specRules(): JSONSchemaProps[] {
  return [
    rule(
      '!has(self.preferredAgent) || has(self.vrrp)',
      'preferred agent rule: spec.preferredAgent needs spec.vrrp',
    ),
    rule(
      '!has(self.preferredAgent) || self.agents.exists(a, a.name == self.preferredAgent)',
      'preferred agent rule: spec.preferredAgent must be listed in spec.agents',
    ),
    rule(
      `!has(self.vrrp) || self.agents.all(a, self.agents.exists_one(b, ${celPriority('b')} == ${celPriority('a')}))`,
      "distinct priorities rule: with spec.vrrp, the agents' priorities (default 200 minus 10 per position) must differ",
    ),
  ];
}

/** `spec.vrrp`, with the same bounds and defaults as `vrrpSchema` (vrrp.ts). */
function vrrpSpecSchema(): JSONSchemaProps {
  const { vrid, advertIntervalMs, fenceHoldSeconds, failbackDelaySeconds, virtualIPs } = VRRP_LIMITS;
  return {
    type: 'object',
    description:
      "The router's keepalived instance (VRRPv3), rendered by the node agents of spec.agents. Without it the operator only listens to keepalived and routes.",
    required: ['interface', 'virtualIPs'],
    'x-kubernetes-validations': [
      rule('self.segment == oldSelf.segment', 'immutable rule: spec.vrrp.segment cannot change'),
      rule(
        'has(self.vrid) == has(oldSelf.vrid) && (!has(self.vrid) || self.vrid == oldSelf.vrid)',
        'immutable rule: spec.vrrp.vrid cannot be set, changed or removed once spec.vrrp exists',
      ),
      rule(
        'self.virtualIPs[0] == oldSelf.virtualIPs[0]',
        'immutable rule: the first of spec.vrrp.virtualIPs cannot change',
      ),
    ],
    properties: {
      segment: str(
        'The L2 domain (one network, one address family, one multicast group) in which VRIDs must be unique (DNS-1123 label). Immutable.',
        {
          maxLength: VRRP_LIMITS.segmentMaxLength,
          default: VRRP_DEFAULTS.segment,
          'x-kubernetes-validations': [
            rule(`self.matches(${celRegex(DNS_LABEL_PATTERN)})`, 'segment rule: must be a DNS-1123 label'),
          ],
        },
      ),
      vrid: int(
        'The virtual router id (1-254). When absent the operator allocates the lowest free one of the segment and records it in status.vrrp.vrid. Cannot be set, changed or removed later.',
        vrid.min,
        vrid.max,
      ),
      interface: str('The network interface VRRP runs on, with the same name on every agent.', {
        minLength: 1,
        maxLength: 15,
        pattern: INTERFACE_PATTERN,
      }),
      virtualIPs: {
        type: 'array',
        description:
          'The virtual IPs as address/prefix (1 to 16, one family, each once). The first is advertised (virtual_ipaddress) and immutable; the others are virtual_ipaddress_excluded, so changing them never changes what peers compare.',
        minItems: virtualIPs.min,
        maxItems: virtualIPs.max,
        'x-kubernetes-list-type': 'atomic',
        'x-kubernetes-validations': [
          rule(
            '!isCIDR(self[0]) || self.all(v, !isCIDR(v) || cidr(v).ip().family() == cidr(self[0]).ip().family())',
            'virtual IP family rule: every virtual IP must be of the family of the first',
          ),
          rule(
            'self.all(v, !isCIDR(v) || self.exists_one(w, isCIDR(w) && cidr(w).ip() == cidr(v).ip()))',
            'unique virtual IPs rule: each address may appear once',
          ),
        ],
        items: str('A virtual IP with its prefix length, e.g. 192.0.2.10/24 or 2001:db8::10/64.', {
          maxLength: VRRP_LIMITS.virtualIPMaxLength,
          'x-kubernetes-validations': [
            rule('isCIDR(self)', 'virtual IP rule: must be an address with its prefix length (CIDR)'),
          ],
        }),
      },
      advertIntervalMs: {
        ...int(
          'The VRRP advertisement interval in milliseconds (100-40950, a multiple of 10; VRRPv3 counts centiseconds).',
          advertIntervalMs.min,
          advertIntervalMs.max,
        ),
        multipleOf: advertIntervalMs.multipleOf,
        default: VRRP_DEFAULTS.advertIntervalMs,
      },
      fenceHoldSeconds: {
        ...int(
          'How long a split-brain fence holds at least before it is lifted; doubled (up to 15 minutes) when the agent claims Primary again within one hold after its fence was lifted.',
          fenceHoldSeconds.min,
          fenceHoldSeconds.max,
        ),
        default: VRRP_DEFAULTS.fenceHoldSeconds,
      },
      failbackDelaySeconds: {
        ...int(
          'How long spec.preferredAgent must have been live again after a failure before the router moves back to it.',
          failbackDelaySeconds.min,
          failbackDelaySeconds.max,
        ),
        default: VRRP_DEFAULTS.failbackDelaySeconds,
      },
    },
  };
}

function harouterSchema(): JSONSchemaProps {
  return {
    type: 'object',
    description:
      "A router's HA configuration (spec, written by the administrator) and the active agent the operator decided (status).",
    required: ['spec'],
    'x-kubernetes-validations': [
      rule(
        `self.metadata.name.matches(${celRegex(UUID_PATTERN)})`,
        'router id rule: metadata.name must be the router id, a lower-case canonical UUID',
      ),
    ],
    properties: {
      ...TYPE_META_PROPERTIES,
      spec: {
        type: 'object',
        description: 'The HA configuration of the router.',
        required: ['agents'],
        'x-kubernetes-validations': specRules(),
        properties: {
          displayName: str(
            `A human-friendly name, at most ${DISPLAY_NAME_MAX_CODE_POINTS} printable characters.`,
            {
              maxLength: DISPLAY_NAME_MAX_CODE_POINTS,
              'x-kubernetes-validations': printableRules('displayName'),
            },
          ),
          agents: {
            type: 'array',
            description: 'The agents (nodes) that may host the router: 1 to 16, unique by name.',
            minItems: 1,
            maxItems: 16,
            'x-kubernetes-list-type': 'map',
            'x-kubernetes-list-map-keys': ['name'],
            'x-kubernetes-validations': [
              rule(
                'self.all(a, self.exists_one(b, b.name == a.name))',
                'unique agents rule: agent names must be unique',
              ),
            ],
            items: {
              type: 'object',
              description: 'An agent that may host the router.',
              required: ['name'],
              properties: {
                name: str(
                  `The node name of the agent (DNS-1123 subdomain, at most ${AGENT_MAX_LENGTH} characters so that <routerId>.<agent> fits an object name).`,
                  { minLength: 1, maxLength: AGENT_MAX_LENGTH, 'x-kubernetes-validations': agentNameRules },
                ),
                priority: int(
                  `The keepalived priority of the agent (1-254). With spec.vrrp it is rendered into the agent's keepalived instance (default ${defaultPriority(0)} minus 10 per position in the list) and must differ from every other agent's; without spec.vrrp it is informational, shown in status.`,
                  1,
                  254,
                ),
              },
            },
          },
          endpoint: {
            type: 'object',
            description:
              'A selector-less Service (created by the user) whose EndpointSlice the operator points at the active agent.',
            required: ['serviceName', 'ports'],
            properties: {
              serviceName: str('Name of the Service, in the namespace of the HARouter (DNS-1035 label).', {
                minLength: 1,
                maxLength: 63,
                pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$',
              }),
              ports: {
                type: 'array',
                description: 'Ports of the endpoint (1 to 32).',
                minItems: 1,
                maxItems: 32,
                'x-kubernetes-list-type': 'atomic',
                items: {
                  type: 'object',
                  description: 'A port of the endpoint, as in an EndpointSlice.',
                  required: ['port'],
                  properties: {
                    name: str(
                      'Name of the port; must match the Service port name when the Service has several.',
                      {
                        maxLength: 63,
                        'x-kubernetes-validations': [
                          rule(
                            `self.matches(${celRegex(DNS_LABEL_PATTERN)})`,
                            'port name rule: must be a DNS-1123 label (as in an EndpointSlice)',
                          ),
                        ],
                      },
                    ),
                    port: int('Port number.', 1, 65535),
                    protocol: str('Protocol: TCP (default), UDP or SCTP.', { enum: ['TCP', 'UDP', 'SCTP'] }),
                  },
                },
              },
            },
          },
          vrrp: vrrpSpecSchema(),
          preferredAgent: str(
            'The agent the router should be active on (a member of spec.agents; needs spec.vrrp). When it is live and not active, the operator moves the router to it by fencing the other agents (see harouterctl switchover).',
            { minLength: 1, maxLength: AGENT_MAX_LENGTH, 'x-kubernetes-validations': agentNameRules },
          ),
        },
      },
      status: {
        type: 'object',
        description: 'The state decided by the operator. Written only by the operator.',
        properties: {
          activeAgent: str('The agent currently routed to; absent when none.', {
            maxLength: AGENT_MAX_LENGTH,
          }),
          activeSince: str('When activeAgent took its current value.', { format: 'date-time' }),
          agents: {
            type: 'array',
            description: 'The state of each agent in spec.agents.',
            maxItems: 16,
            'x-kubernetes-list-type': 'map',
            'x-kubernetes-list-map-keys': ['name'],
            items: {
              type: 'object',
              description: "One agent's decided state.",
              required: ['name', 'state'],
              properties: {
                name: str('The node name of the agent.', { maxLength: AGENT_MAX_LENGTH }),
                state: str('Primary, Backup, Fault, Stopped (as reported) or Unknown.', {
                  enum: [...AGENT_STATES],
                }),
                observedAt: str("The observedAt of the agent's latest report.", {
                  maxLength: OBSERVED_AT_MAX_LENGTH,
                }),
                priority: int(
                  "The agent's keepalived priority: with spec.vrrp the rendered one (spec.agents[].priority, default 200 minus 10 per position), without it spec.agents[].priority.",
                  0,
                  255,
                ),
                fenced: {
                  type: 'boolean',
                  description:
                    "True while the operator asks this agent's keepalived instance to stay in FAULT (switchover, drain or split brain); the node agent writes it to the router's fence file.",
                },
                reason: str('Why the agent is Unknown: NoReport, NodeNotFound or NodeNotReady.', {
                  enum: [...UNKNOWN_REASONS],
                }),
              },
            },
          },
          liveAgents: int('Agents on Ready nodes whose report is Primary or Backup.', 0, 16),
          transitions: {
            type: 'integer',
            format: 'int64',
            minimum: 0,
            description: 'Number of changes of activeAgent (to and from none included).',
          },
          lastTransitionTime: str('When activeAgent last changed.', { format: 'date-time' }),
          observedGeneration: observedGenerationSchema,
          conditions: conditionsSchema(
            'Ready, SplitBrain and Degraded; with spec.vrrp also Switchover and Draining.',
          ),
          vrrp: {
            type: 'object',
            description:
              'The VRID the operator recorded for spec.vrrp (allocated, or spec.vrrp.vrid); never changes while spec.vrrp is set. Absent while none is recorded (and for a VRID used by an earlier router): no agent renders the router then.',
            required: ['vrid', 'segment'],
            properties: {
              vrid: int(
                'The virtual router id of the keepalived instance.',
                VRRP_LIMITS.vrid.min,
                VRRP_LIMITS.vrid.max,
              ),
              segment: str('The segment the VRID is unique in.', { maxLength: VRRP_LIMITS.segmentMaxLength }),
            },
          },
        },
      },
    },
  };
}

function harouterStateSchema(): JSONSchemaProps {
  return {
    type: 'object',
    description:
      "One agent's latest report about one router. Named <routerId>.<agent>; written by reporters only (admission checks who).",
    required: ['spec'],
    'x-kubernetes-validations': [
      rule(
        "self.metadata.name == self.spec.routerId + '.' + self.spec.agent",
        'name rule: metadata.name must be <spec.routerId>.<spec.agent>',
      ),
    ],
    properties: {
      ...TYPE_META_PROPERTIES,
      spec: {
        type: 'object',
        description: 'The report, as the agent saw it.',
        required: ['routerId', 'agent', 'state', 'observedAt'],
        'x-kubernetes-validations': [
          rule('timestamp(self.observedAt) >= timestamp(oldSelf.observedAt)', STALE_REPORT_MESSAGE, {
            reason: 'FieldValueForbidden',
            fieldPath: '.observedAt',
          }),
        ],
        properties: {
          routerId: str(
            'The router id (lower-case canonical UUID): the name of the HARouter in this namespace. Immutable.',
            {
              minLength: 36,
              maxLength: 36,
              'x-kubernetes-validations': [
                rule(
                  `self.matches(${celRegex(UUID_PATTERN)})`,
                  'router id rule: routerId must be a lower-case canonical UUID',
                ),
                rule('self == oldSelf', 'immutable rule: routerId cannot change'),
              ],
            },
          ),
          agent: str(
            'The node name of the reporting agent. Immutable; must be the node of the reporter token.',
            {
              minLength: 1,
              maxLength: AGENT_MAX_LENGTH,
              'x-kubernetes-validations': [
                ...agentNameRules,
                rule('self == oldSelf', 'immutable rule: agent cannot change'),
              ],
            },
          ),
          state: str('The VRRP state the agent entered.', { enum: [...REPORTED_STATES] }),
          observedAt: str(
            'RFC 3339 time at which the agent saw the transition (0 to 9 fractional digits). Never moves backwards.',
            {
              // With format date-time, CEL sees a timestamp (compared at full precision);
              // the pattern narrows what the format accepts to the contract's RFC 3339.
              format: 'date-time',
              maxLength: OBSERVED_AT_MAX_LENGTH,
              pattern: RFC3339_PATTERN,
            },
          ),
          priority: int('The keepalived priority at the transition (0-255).', 0, 255),
          message: str(
            `Free text from the agent, at most ${MESSAGE_MAX_CODE_POINTS} printable characters (no control or bidirectional-control characters).`,
            { maxLength: MESSAGE_MAX_CODE_POINTS, 'x-kubernetes-validations': printableRules('message') },
          ),
        },
      },
      status: {
        type: 'object',
        description: 'Written only by the operator.',
        properties: {
          conditions: conditionsSchema(
            `Accepted: True, or False with reason ${NOT_ACCEPTED_REASONS.join(' or ')}.`,
          ),
          observedGeneration: observedGenerationSchema,
        },
      },
    },
  };
}

function crd(
  names: { kind: string; plural: string; shortName: string },
  schema: JSONSchemaProps,
  columns: JSONSchemaProps[],
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${names.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'harouter-operator', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: names.kind,
        listKind: `${names.kind}List`,
        plural: names.plural,
        singular: names.kind.toLowerCase(),
        shortNames: [names.shortName],
        categories: ['harouter-all'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

const condition = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;
const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** The HARouter CRD (`harouters.harouter.dev`). */
export function harouterCrd(): CustomResourceDefinition {
  return crd(HAROUTER, harouterSchema(), [
    { name: 'Display name', type: 'string', jsonPath: '.spec.displayName' },
    { name: 'Active', type: 'string', jsonPath: '.status.activeAgent' },
    { name: 'Ready', type: 'string', jsonPath: condition('Ready') },
    { name: 'Split brain', type: 'string', jsonPath: condition('SplitBrain') },
    { name: 'Live', type: 'integer', jsonPath: '.status.liveAgents' },
    age,
  ]);
}

/** The HARouterState CRD (`harouterstates.harouter.dev`). */
export function harouterStateCrd(): CustomResourceDefinition {
  return crd(HAROUTER_STATE, harouterStateSchema(), [
    { name: 'Router', type: 'string', jsonPath: '.spec.routerId' },
    { name: 'Agent', type: 'string', jsonPath: '.spec.agent' },
    { name: 'State', type: 'string', jsonPath: '.spec.state' },
    { name: 'Observed', type: 'date', jsonPath: '.spec.observedAt' },
    { name: 'Accepted', type: 'string', jsonPath: condition('Accepted') },
    age,
  ]);
}

/** Both CRDs, with the file name each is written to under `crds/`. */
export function allCrds(): { file: string; crd: CustomResourceDefinition }[] {
  return [
    { file: `${GROUP}_${HAROUTER.plural}.yaml`, crd: harouterCrd() },
    { file: `${GROUP}_${HAROUTER_STATE.plural}.yaml`, crd: harouterStateCrd() },
  ];
}
