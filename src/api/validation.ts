/**
 * The primitive rules of the contract, written once and shared by the zod
 * schemas, the webhook policy and the CRD generator, so that code and CRD agree.
 * Each regex is anchored; the CRD uses the same source text as its `pattern`.
 */

/** Canonical lower-case UUID (8-4-4-4-12 hex). */
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
/** DNS-1123 subdomain, the shape of a Node name. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** DNS-1123 label: an EndpointSlice port name. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** Longest agent (node) name: `<36-char uuid>.<agent>` must fit a 253-character object name. */
export const AGENT_MAX_LENGTH = 216;
/**
 * RFC 3339 date-time with 0 to 9 fractional digits and `Z` or a numeric offset.
 * Years 1000-9999 and no leap second (`:60`): what CEL's `timestamp()` and the
 * API server's `date-time` format accept too, so that zod and the CRD agree.
 */
export const RFC3339_PATTERN =
  '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$';
/** Longest observedAt: 19 characters, 10 of fraction, 6 of offset. */
export const OBSERVED_AT_MAX_LENGTH = 35;
/**
 * The words every refusal of a backwards `observedAt` begins with (CRD rule,
 * webhook and policy alike): `harouterctl report` treats such a refusal as success.
 */
export const STALE_REPORT_MESSAGE =
  'stale report: spec.observedAt may not move backwards (the stored report is newer than this one)';
/** Longest `spec.message`, in code points. */
export const MESSAGE_MAX_CODE_POINTS = 256;
/** Longest `spec.displayName`, in code points. */
export const DISPLAY_NAME_MAX_CODE_POINTS = 64;
/**
 * Characters refused in free text: Unicode control characters (category Cc: NUL,
 * CR, LF, ESC, DEL...) and bidirectional controls U+202A-U+202E, U+2066-U+2069.
 * Written with escapes only, so that the same source serves JavaScript and RE2 (CEL).
 */
export const FORBIDDEN_TEXT_CLASS =
  '[\\x{0000}-\\x{001F}\\x{007F}-\\x{009F}\\x{202A}-\\x{202E}\\x{2066}-\\x{2069}]';

const uuid = new RegExp(UUID_PATTERN);
const dnsSubdomain = new RegExp(DNS_SUBDOMAIN_PATTERN);
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is this rule's purpose.
const forbiddenText = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** Counts code points, as OpenAPI and CEL do (JavaScript's `.length` counts UTF-16 units). */
export function codePointLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

/** True for a canonical lower-case UUID. */
export function isRouterId(value: string): boolean {
  return uuid.test(value);
}

/** True for a node name usable as an agent: DNS-1123 subdomain of at most 216 characters. */
export function isAgentName(value: string): boolean {
  return value.length > 0 && value.length <= AGENT_MAX_LENGTH && dnsSubdomain.test(value);
}

/** True when the text has no control or bidirectional-control characters. */
export function isPrintable(value: string): boolean {
  return !forbiddenText.test(value);
}

/** The only valid name of the HARouterState for (routerId, agent). */
export function stateObjectName(routerId: string, agent: string): string {
  return `${routerId}.${agent}`;
}
