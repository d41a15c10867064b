import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { prometheusConfig, targetGroups } from '../../src/local/prometheus.ts';

describe("local mode's Prometheus configuration", () => {
  it('discovers its targets from files, keeps the metrics labels and loads the rule files', () => {
    const config = parse(prometheusConfig({ targetsDir: '/d/targets', ruleFiles: ['/repo/rules.yaml'] }));
    expect(config.global).toEqual({ scrape_interval: '2s', scrape_timeout: '2s', evaluation_interval: '2s' });
    expect(config.rule_files).toEqual(['/repo/rules.yaml']);
    expect(config.scrape_configs).toEqual([
      {
        job_name: 'local',
        honor_labels: true,
        file_sd_configs: [{ files: ['/d/targets/*.json'], refresh_interval: '2s' }],
      },
    ]);
  });

  it('gives each target its job, scheme and path as labels', () => {
    expect(
      targetGroups([
        { job: 'harouter-operator-metrics', url: 'http://127.0.0.1:8080/metrics' },
        { job: 'harouter-agent', url: 'https://127.0.0.1/custom' },
      ]),
    ).toEqual([
      {
        targets: ['127.0.0.1:8080'],
        labels: { job: 'harouter-operator-metrics', __scheme__: 'http', __metrics_path__: '/metrics' },
      },
      {
        targets: ['127.0.0.1:443'],
        labels: { job: 'harouter-agent', __scheme__: 'https', __metrics_path__: '/custom' },
      },
    ]);
  });

  it('refuses a target that is not an http(s) URL', () => {
    expect(() => targetGroups([{ job: 'x', url: 'ftp://h/metrics' }])).toThrow(/not an http\(s\) URL/);
    expect(() => targetGroups([{ job: 'x', url: 'not a url' }])).toThrow();
  });
});
