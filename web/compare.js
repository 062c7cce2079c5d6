// The strip on top of the page: one small bar chart per cost, one bar per
// pane, from the same numbers the panes show (app.js measures them), and
// the formats both use.

/** The nearest-rank percentile of sorted numbers, or null if there are none. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}

export function formatMs(ms) {
  if (ms === null) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function formatBytes(bytes) {
  return bytes === null ? '—' : `${Math.round(bytes)} B`;
}

export function formatRatio(ratio) {
  if (ratio === null) return '—';
  return ratio < 10 ? ratio.toFixed(2) : String(Math.round(ratio));
}

/**
 * The strip on top: one small bar chart per cost, one bar per pane, from
 * the same numbers the panes show. Plain elements: a bar is a span whose
 * width (set through the CSSOM, which the page's CSP allows) is its value
 * over the chart's largest. Each row carries its value in data-value.
 */
export class Comparison {
  /** The charts in index.html, by `data-metric`, and how each is shown. */
  static METRICS = {
    bytes_per_msg: { key: 'bytesPerMsg', format: formatBytes },
    requests_per_msg: { key: 'requestsPerMsg', format: formatRatio },
    p50: { key: 'p50', format: formatMs },
  };

  constructor(container, panes) {
    this.charts = [];
    const template = document.getElementById('bar-template').content.firstElementChild;
    for (const [metric, { key, format }] of Object.entries(Comparison.METRICS)) {
      const list = container.querySelector(`[data-metric="${metric}"] ol.bars`);
      const rows = panes.map((pane) => {
        const row = template.cloneNode(true);
        row.dataset.transport = pane.name;
        row.querySelector('.bar-label').textContent = pane.title;
        list.append(row);
        return { row, bar: row.querySelector('.bar'), value: row.querySelector('.bar-value') };
      });
      this.charts.push({ key, format, rows });
    }
  }

  /** `costs[i]` is what measure() found for pane i. */
  render(costs) {
    for (const { key, format, rows } of this.charts) {
      const values = costs.map((cost) => cost[key]);
      const largest = Math.max(0, ...values.filter((v) => v !== null));
      rows.forEach(({ row, bar, value }, i) => {
        const v = values[i];
        // A bar with a value is never thinner than a sliver, so it shows.
        const width = v === null || largest === 0 ? 0 : Math.max(2, (100 * v) / largest);
        bar.style.width = `${width.toFixed(1)}%`;
        row.dataset.value = v === null ? '' : String(v);
        value.textContent = format(v);
      });
    }
  }
}
