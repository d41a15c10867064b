import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { allCrds, type JSONSchemaProps } from '../../src/api/crds.ts';
import { REPO_ROOT, renderGeneratedFiles } from '../../src/generate-manifests.ts';

describe('generated manifests', () => {
  it.each([...renderGeneratedFiles().keys()])(
    '%s is up to date (run `npm run generate:crds`)',
    async (path) => {
      const onDisk = await readFile(`${REPO_ROOT}${path}`, 'utf8');
      expect(onDisk).toBe(renderGeneratedFiles().get(path));
    },
  );

  it('the YAML parses back to the CRD objects', async () => {
    for (const { file, crd } of allCrds()) {
      expect(parse(await readFile(`${REPO_ROOT}crds/${file}`, 'utf8'))).toEqual(crd);
    }
  });
});

/** Every schema node with its path. */
function* walk(schema: JSONSchemaProps, path: string): Generator<[string, JSONSchemaProps]> {
  yield [path, schema];
  for (const [key, child] of Object.entries(schema.properties ?? {}))
    yield* walk(child as JSONSchemaProps, `${path}.${key}`);
  if (schema.items) yield* walk(schema.items, `${path}[]`);
}

describe.each(allCrds())('CRD $file', ({ crd }) => {
  const version = crd.spec.versions[0];
  const schema = version.schema.openAPIV3Schema as JSONSchemaProps;

  it('is namespaced, v1alpha1, with the status subresource and the harouter-all category', () => {
    expect(crd.spec.group).toBe('harouter.dev');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(version.name).toBe('v1alpha1');
    expect(version.subresources).toEqual({ status: {} });
    expect(crd.spec.names.categories).toEqual(['harouter-all']);
  });

  it('describes every field (kubectl explain)', () => {
    // metadata may carry nothing but its type (the API server refuses more).
    const missing = [...walk(schema, '')]
      .filter(([p, s]) => !s.description && p !== '.metadata')
      .map(([p]) => p || '(root)');
    expect(missing).toEqual([]);
  });

  it('bounds every string and list (CEL cost)', () => {
    const unbounded = [...walk(schema, '')]
      .filter(([path, s]) => {
        if (path === '.apiVersion' || path === '.kind') return false;
        if (s.type === 'array') return s.maxItems === undefined;
        if (s.type === 'string')
          return s.maxLength === undefined && s.enum === undefined && s.format !== 'date-time';
        return false;
      })
      .map(([p]) => p);
    expect(unbounded).toEqual([]);
  });

  it('gives every CEL rule a message that names it', () => {
    const rules = [...walk(schema, '')].flatMap(
      ([, s]) => (s['x-kubernetes-validations'] ?? []) as JSONSchemaProps[],
    );
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) expect(rule.message).toMatch(/^(\w[\w ]* rule|stale report): /);
  });
});

describe('printer columns and names', () => {
  const [router, state] = allCrds().map(({ crd }) => crd);
  it('HARouter', () => {
    expect(router?.spec.names).toMatchObject({ kind: 'HARouter', plural: 'harouters', shortNames: ['har'] });
    expect(router?.spec.versions[0].additionalPrinterColumns.map((c: { name: string }) => c.name)).toEqual([
      'Display name',
      'Active',
      'Ready',
      'Split brain',
      'Live',
      'Age',
    ]);
  });
  it('HARouterState', () => {
    expect(state?.spec.names).toMatchObject({
      kind: 'HARouterState',
      plural: 'harouterstates',
      shortNames: ['hars'],
    });
    expect(state?.spec.versions[0].additionalPrinterColumns.map((c: { name: string }) => c.name)).toEqual([
      'Router',
      'Agent',
      'State',
      'Observed',
      'Accepted',
      'Age',
    ]);
  });
  it('the name rule has no oldSelf (it must run on CREATE) and the transition rules are separate', () => {
    const root = state?.spec.versions[0].schema.openAPIV3Schema;
    const nameRule = root['x-kubernetes-validations'][0];
    expect(nameRule.rule).not.toContain('oldSelf');
    const spec = root.properties.spec;
    expect(spec['x-kubernetes-validations'][0]).toMatchObject({
      reason: 'FieldValueForbidden',
      fieldPath: '.observedAt',
    });
    expect(spec['x-kubernetes-validations'][0].message).toMatch(/^stale report: /);
    for (const field of ['routerId', 'agent']) {
      const rules = spec.properties[field]['x-kubernetes-validations'] as { rule: string }[];
      expect(rules.filter((r) => r.rule.includes('oldSelf'))).toEqual([
        { rule: 'self == oldSelf', message: expect.any(String) },
      ]);
    }
  });
});
