import { useId } from "react";
import { decimal } from "../lib/format";
import { rocPoints, rocScorers, type RocCurve, type RocCurves } from "../lib/report";

// Okabe–Ito colours (told apart with colour-blindness too), and a dash pattern per attack
// so that lines differ without colour.
const LINE_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];
const LINE_DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2", "10 4"];

export interface LineStyle {
  colour: string;
  dash: string;
}

/** The same colour and dash for an attack in every panel: ``order`` first, then the rest sorted. */
export function lineStyles(curves: RocCurves, order: string[] = []): Map<string, LineStyle> {
  const seen = new Set(Object.values(curves).flatMap((perAttack) => Object.keys(perAttack ?? {})));
  const names = [
    ...order.filter((name) => seen.has(name)),
    ...[...seen].filter((n) => !order.includes(n)).sort(),
  ];
  return new Map(
    names.map((name, i) => [
      name,
      { colour: LINE_COLOURS[i % LINE_COLOURS.length]!, dash: LINE_DASHES[i % LINE_DASHES.length]! },
    ]),
  );
}

const PLOT = 240;
const LEFT = 48;
const TOP = 10;
const RIGHT = 12;
const BOTTOM = 44;
const WIDTH = LEFT + PLOT + RIGHT;
const HEIGHT = TOP + PLOT + BOTTOM;
const TICKS = [0, 0.25, 0.5, 0.75, 1];

const px = (fpr: number) => LEFT + PLOT * Math.max(0, Math.min(1, fpr));
const py = (tpr: number) => TOP + PLOT * (1 - Math.max(0, Math.min(1, tpr)));

/** An SVG path through a curve's points, or null if it has none. */
export function rocPath(curve: RocCurve): string | null {
  const points = rocPoints(curve);
  if (points.length === 0) return null;
  return points
    .map(([fpr, tpr], i) => `${i === 0 ? "M" : "L"}${px(fpr).toFixed(1)} ${py(tpr).toFixed(1)}`)
    .join(" ");
}

function LegendLine({ style }: { style: LineStyle }) {
  return (
    <svg className="legend-line" width="26" height="10" aria-hidden="true" focusable="false">
      <line
        x1="1"
        x2="25"
        y1="5"
        y2="5"
        stroke={style.colour}
        strokeWidth="2.5"
        strokeDasharray={style.dash || undefined}
      />
    </svg>
  );
}

/** One scorer's ROC curves: one line per attack, the chance diagonal, AUROC in the legend. */
export function RocChart({
  scorer,
  curves,
  styles,
}: {
  scorer: string;
  curves: Record<string, RocCurve>;
  styles: Map<string, LineStyle>;
}) {
  const id = useId();
  const attacks = [...styles.keys()].filter((name) => curves[name] !== undefined);
  const summary = attacks.map((name) => `${name} AUROC ${decimal(curves[name]!.auroc)}`).join("; ");
  return (
    <figure className="chart roc-chart" data-scorer={scorer}>
      <figcaption className="roc-scorer">{scorer}</figcaption>
      <svg
        role="img"
        aria-labelledby={`${id}-title`}
        aria-describedby={`${id}-desc`}
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        width={WIDTH}
        height={HEIGHT}
      >
        <title id={`${id}-title`}>{`ROC curves: ${scorer}`}</title>
        <desc id={`${id}-desc`}>
          {`True-positive rate (attacked images caught) against false-positive rate (clean images rejected) of ${scorer}, one line per attack: ${summary}. The dashed diagonal is chance.`}
        </desc>
        {TICKS.map((tick) => (
          <g key={tick}>
            <line x1={px(tick)} x2={px(tick)} y1={py(0)} y2={py(1)} className="grid-line" />
            <line x1={px(0)} x2={px(1)} y1={py(tick)} y2={py(tick)} className="grid-line" />
            <text x={px(tick)} y={py(0) + 14} textAnchor="middle" className="axis-label">
              {tick}
            </text>
            <text x={px(0) - 6} y={py(tick) + 4} textAnchor="end" className="axis-label">
              {tick}
            </text>
          </g>
        ))}
        <rect x={px(0)} y={py(1)} width={PLOT} height={PLOT} className="plot-frame" />
        <line x1={px(0)} y1={py(0)} x2={px(1)} y2={py(1)} className="chance-line" />
        {attacks.map((name) => {
          const d = rocPath(curves[name]!);
          const style = styles.get(name)!;
          return d === null ? null : (
            <path
              key={name}
              d={d}
              className="roc-line"
              data-attack={name}
              stroke={style.colour}
              strokeDasharray={style.dash || undefined}
            >
              <title>{`${name}: AUROC ${decimal(curves[name]!.auroc)}`}</title>
            </path>
          );
        })}
        <text x={LEFT + PLOT / 2} y={HEIGHT - 8} textAnchor="middle" className="axis-label">
          false-positive rate (clean rejected)
        </text>
        <text x={-(TOP + PLOT / 2)} y={14} transform="rotate(-90)" textAnchor="middle" className="axis-label">
          true-positive rate
        </text>
      </svg>
      <ul className="legend roc-legend" aria-label={`${scorer}: AUROC per attack`}>
        {attacks.map((name) => (
          <li key={name} className="legend-item">
            <LegendLine style={styles.get(name)!} />
            {name} — AUROC {decimal(curves[name]!.auroc)}
          </li>
        ))}
      </ul>
    </figure>
  );
}

/** One ROC panel per scorer (the detector, then the baselines), attacks styled alike in all. */
export function RocCharts({ curves, attackNames = [] }: { curves: RocCurves; attackNames?: string[] }) {
  const scorers = rocScorers(curves);
  if (scorers.length === 0)
    return (
      <p className="muted">
        This report has no ROC curves (it predates them): evaluate the detector again to draw them.
      </p>
    );
  const styles = lineStyles(curves, attackNames);
  return (
    <div className="roc-panels" data-testid="roc-curves">
      {scorers.map((scorer) => (
        <RocChart key={scorer} scorer={scorer} curves={curves[scorer] ?? {}} styles={styles} />
      ))}
    </div>
  );
}
