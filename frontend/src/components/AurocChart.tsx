import { decimal } from "../lib/format";
import { baselineNames, type ReportRow } from "../lib/report";

const SERIES_COLOURS = ["#1f5fbf", "#d9822b", "#2e9e6a", "#a34fc2", "#c23b3b"];

/** Grouped bars: one group per attack × ε, one bar per detector (ours, then baselines). */
export function AurocChart({ rows }: { rows: ReportRow[] }) {
  if (rows.length === 0) return null;
  const series = ["detector", ...baselineNames(rows)];
  const value = (row: ReportRow, name: string) =>
    name === "detector" ? row.auroc : (row.baselines?.[name] ?? null);
  const barWidth = 18;
  const groupGap = 24;
  const groupWidth = series.length * barWidth + groupGap;
  const left = 40;
  const top = 10;
  const height = 180;
  const bottom = 44;
  const width = Math.max(360, left + rows.length * groupWidth + 10);
  const y = (v: number) => top + height * (1 - v);
  return (
    <figure className="chart">
      <svg
        role="img"
        aria-labelledby="auroc-chart-title"
        viewBox={`0 0 ${width} ${top + height + bottom}`}
        width={width}
        height={top + height + bottom}
      >
        <title id="auroc-chart-title">AUROC per attack and budget</title>
        {[0, 0.25, 0.5, 0.75, 1].map((tick) => (
          <g key={tick}>
            <line x1={left} x2={width - 5} y1={y(tick)} y2={y(tick)} className="grid-line" />
            <text x={left - 6} y={y(tick) + 4} textAnchor="end" className="axis-label">
              {tick}
            </text>
          </g>
        ))}
        <line x1={left} x2={width - 5} y1={y(0.5)} y2={y(0.5)} className="chance-line" />
        {rows.map((row, i) => {
          const x0 = left + i * groupWidth + groupGap / 2;
          return (
            <g key={`${row.attack} ${row.eps}`}>
              {series.map((name, k) => {
                const v = value(row, name);
                const h = v === null || v === undefined ? 0 : Math.max(0, Math.min(1, v)) * height;
                return (
                  <rect
                    key={name}
                    x={x0 + k * barWidth}
                    y={top + height - h}
                    width={barWidth - 2}
                    height={h}
                    fill={SERIES_COLOURS[k % SERIES_COLOURS.length]}
                  >
                    <title>{`${row.attack} ${row.eps} — ${name}: ${decimal(v)}`}</title>
                  </rect>
                );
              })}
              <text
                x={x0 + (series.length * barWidth) / 2}
                y={top + height + 16}
                textAnchor="middle"
                className="axis-label"
              >
                {row.attack}
              </text>
              <text
                x={x0 + (series.length * barWidth) / 2}
                y={top + height + 30}
                textAnchor="middle"
                className="axis-label muted"
              >
                {row.eps}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption>
        <span className="legend">
          {series.map((name, k) => (
            <span key={name} className="legend-item">
              <span
                className="legend-swatch"
                style={{ background: SERIES_COLOURS[k % SERIES_COLOURS.length] }}
                aria-hidden="true"
              />
              {name}
            </span>
          ))}
        </span>
        AUROC of telling attacked from clean test images (dotted line: chance, 0.5).
      </figcaption>
    </figure>
  );
}
