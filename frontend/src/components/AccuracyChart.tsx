import { percent, type Norm } from "../lib/format";
import { budgetLabel, NORM_LABEL } from "../lib/robustness";
import { finitePairs } from "../lib/shape";
import { LineChart, type LineStyle, type Tick } from "./LineChart";

const PERCENT_TICKS: Tick[] = [0, 0.25, 0.5, 0.75, 1].map((at) => ({ at, label: `${at * 100} %` }));
/** Past this many budgets, only every other tick is labelled (the labels would touch). */
const LABELLED_TICKS = 8;

/** Where each budget sits on the x axis (0..1): evenly spaced in grid order, since grids
 * are roughly geometric (0, 1, 2, 4, 8, 16 /255) and a linear axis would crowd them. */
export function budgetPositions(count: number): number[] {
  return count === 1 ? [0.5] : Array.from({ length: count }, (_, i) => i / (count - 1));
}

/** A tick per budget; with many budgets some are left unlabelled, never the last. */
export function budgetTicks(epsilons: number[], norm: Norm = "linf"): Tick[] {
  const positions = budgetPositions(epsilons.length);
  const every = Math.ceil(epsilons.length / LABELLED_TICKS);
  return epsilons.map((eps, i) => ({
    at: positions[i]!,
    label: i % every === 0 || i === epsilons.length - 1 ? budgetLabel(eps, norm) : "",
  }));
}

export interface AccuracyLine {
  /** Its key (``data-series`` on the path). */
  name: string;
  /** One accuracy per budget (null where unknown). */
  values: (number | null)[];
  style: LineStyle;
  /** Legend text, when it differs from the name. */
  legend?: string;
  emphasis?: boolean;
}

/** Accuracy against the budget ε (L∞ unless told): a line per series, each value also in the tooltip
 * and the description (and in the tables beside every chart). */
export function AccuracyChart({
  title,
  caption,
  epsilons,
  lines,
  legendLabel,
  norm = "linf",
}: {
  /** The chart's accessible name. */
  title: string;
  /** The visible heading above it. */
  caption: string;
  epsilons: number[];
  lines: AccuracyLine[];
  legendLabel: string;
  norm?: Norm;
}) {
  const xs = budgetPositions(epsilons.length);
  const values = (line: AccuracyLine) => line.values.map((value) => percent(value)).join(", ");
  const described = lines.map((line) => `${line.legend ?? line.name} ${values(line)}`).join("; ");
  return (
    <figure className="chart line-chart">
      <figcaption className="chart-title">{caption}</figcaption>
      <LineChart
        title={title}
        description={`Accuracy against the ${NORM_LABEL[norm]} budget ε (${epsilons.map((eps) => budgetLabel(eps, norm)).join(", ")}; evenly spaced): ${described}.`}
        xLabel={`budget ε (${NORM_LABEL[norm]})`}
        yLabel="accuracy"
        xTicks={budgetTicks(epsilons, norm)}
        yTicks={PERCENT_TICKS}
        markers
        legendLabel={legendLabel}
        series={lines.map((line) => ({
          name: line.name,
          points: finitePairs(xs, line.values),
          style: line.style,
          legend: line.legend ?? line.name,
          tooltip: `${line.legend ?? line.name}: ${values(line)}`,
          emphasis: line.emphasis,
        }))}
      />
    </figure>
  );
}
