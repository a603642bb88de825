import { useId } from "react";

// The one SVG line chart of the app (ROC curves, accuracy against ε): a square plot with
// both axes running 0..1, grid lines at the ticks, axis titles, one path per series and a
// legend as an HTML list (it wraps on narrow screens; the SVG itself scales down).

// Okabe–Ito colours (told apart with colour-blindness too), and a dash pattern per series
// so that lines differ without colour. Black is kept for emphasised lines (a worst case).
const LINE_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f"];
const LINE_DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2", "10 4"];
/** The style of an emphasised series: thick and black. */
export const EMPHASIS: LineStyle = { colour: "#1b1f24", dash: "" };

export interface LineStyle {
  colour: string;
  dash: string;
}

/** A colour and dash per name, in the order given (the same name, the same style). */
export function lineStyles(names: string[]): Map<string, LineStyle> {
  return new Map(
    names.map((name, i) => [
      name,
      { colour: LINE_COLOURS[i % LINE_COLOURS.length]!, dash: LINE_DASHES[i % LINE_DASHES.length]! },
    ]),
  );
}

/** A tick at ``at`` (0..1 along its axis) and its label. */
export interface Tick {
  at: number;
  label: string;
}

export interface Series {
  /** Its key, and ``data-series`` on its path. */
  name: string;
  /** (x, y) points, both in 0..1 of their axes; values outside are clamped. */
  points: [number, number][];
  style: LineStyle;
  /** The text of its legend entry. */
  legend: string;
  /** What hovering the line says. */
  tooltip: string;
  /** Drawn thicker, above the others. */
  emphasis?: boolean;
}

const PLOT = 240;
const LEFT = 60; // room for "100 %" beside the y title
const TOP = 10;
const RIGHT = 28; // half of the widest last x label ("16/255")
const BOTTOM = 44;
const WIDTH = LEFT + PLOT + RIGHT;
const HEIGHT = TOP + PLOT + BOTTOM;

const clamp = (value: number) => Math.max(0, Math.min(1, value));
const px = (x: number) => LEFT + PLOT * clamp(x);
const py = (y: number) => TOP + PLOT * (1 - clamp(y));

/** An SVG path through points in unit coordinates, or null if there are none. */
export function linePath(points: [number, number][]): string | null {
  if (points.length === 0) return null;
  return points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join(" ");
}

export function LegendLine({ style, emphasis = false }: { style: LineStyle; emphasis?: boolean }) {
  return (
    <svg className="legend-line" width="26" height="10" aria-hidden="true" focusable="false">
      <line
        x1="1"
        x2="25"
        y1="5"
        y2="5"
        stroke={style.colour}
        strokeWidth={emphasis ? 4 : 2.5}
        strokeDasharray={style.dash || undefined}
      />
    </svg>
  );
}

/** The chart: an accessible SVG (title, description, axis titles) and its legend. */
export function LineChart({
  title,
  description,
  xLabel,
  yLabel,
  xTicks,
  yTicks,
  series,
  legendLabel,
  diagonal = false,
  markers = false,
}: {
  title: string;
  description: string;
  xLabel: string;
  yLabel: string;
  xTicks: Tick[];
  yTicks: Tick[];
  series: Series[];
  legendLabel: string;
  /** The dashed y = x line (chance, for ROC curves). */
  diagonal?: boolean;
  /** A dot at every point (for short series, where a lone point would not show). */
  markers?: boolean;
}) {
  const id = useId();
  // Emphasised series last, so that they are drawn on top.
  const drawn = [...series.filter((s) => !s.emphasis), ...series.filter((s) => s.emphasis)];
  return (
    <>
      <svg
        role="img"
        aria-labelledby={`${id}-title`}
        aria-describedby={`${id}-desc`}
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        width={WIDTH}
        height={HEIGHT}
      >
        <title id={`${id}-title`}>{title}</title>
        <desc id={`${id}-desc`}>{description}</desc>
        {xTicks.map((tick) => (
          <g key={`x${tick.at}`}>
            <line x1={px(tick.at)} x2={px(tick.at)} y1={py(0)} y2={py(1)} className="grid-line" />
            <text x={px(tick.at)} y={py(0) + 14} textAnchor="middle" className="axis-label">
              {tick.label}
            </text>
          </g>
        ))}
        {yTicks.map((tick) => (
          <g key={`y${tick.at}`}>
            <line x1={px(0)} x2={px(1)} y1={py(tick.at)} y2={py(tick.at)} className="grid-line" />
            <text x={px(0) - 6} y={py(tick.at) + 4} textAnchor="end" className="axis-label">
              {tick.label}
            </text>
          </g>
        ))}
        <rect x={px(0)} y={py(1)} width={PLOT} height={PLOT} className="plot-frame" />
        {diagonal ? <line x1={px(0)} y1={py(0)} x2={px(1)} y2={py(1)} className="chance-line" /> : null}
        {drawn.map((line) => {
          const d = linePath(line.points);
          return d === null ? null : (
            <g key={line.name}>
              <path
                d={d}
                className={line.emphasis ? "chart-line chart-line-emphasis" : "chart-line"}
                data-series={line.name}
                stroke={line.style.colour}
                strokeDasharray={line.style.dash || undefined}
              >
                <title>{line.tooltip}</title>
              </path>
              {markers
                ? line.points.map(([x, y]) => (
                    <circle
                      key={x}
                      cx={px(x)}
                      cy={py(y)}
                      r={line.emphasis ? 3.5 : 2.5}
                      className="chart-marker"
                      fill={line.style.colour}
                    />
                  ))
                : null}
            </g>
          );
        })}
        <text x={LEFT + PLOT / 2} y={HEIGHT - 8} textAnchor="middle" className="axis-label">
          {xLabel}
        </text>
        <text x={-(TOP + PLOT / 2)} y={14} transform="rotate(-90)" textAnchor="middle" className="axis-label">
          {yLabel}
        </text>
      </svg>
      <ul className="legend chart-legend" aria-label={legendLabel}>
        {series.map((line) => (
          <li key={line.name} className="legend-item">
            <LegendLine style={line.style} emphasis={line.emphasis} />
            {line.emphasis ? <strong>{line.legend}</strong> : line.legend}
          </li>
        ))}
      </ul>
    </>
  );
}
