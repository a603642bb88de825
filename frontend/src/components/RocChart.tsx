import { decimal } from "../lib/format";
import { rocPoints, rocScorers, type RocCurve, type RocCurves } from "../lib/report";
import { LineChart, linePath, lineStyles, type LineStyle, type Tick } from "./LineChart";

const TICKS: Tick[] = [0, 0.25, 0.5, 0.75, 1].map((at) => ({ at, label: String(at) }));

/** The same colour and dash for an attack in every panel: ``order`` first, then the rest sorted. */
export function attackStyles(curves: RocCurves, order: string[] = []): Map<string, LineStyle> {
  const seen = new Set(Object.values(curves).flatMap((perAttack) => Object.keys(perAttack ?? {})));
  return lineStyles([
    ...order.filter((name) => seen.has(name)),
    ...[...seen].filter((n) => !order.includes(n)).sort(),
  ]);
}

/** An SVG path through a curve's points, or null if it has none. */
export function rocPath(curve: RocCurve): string | null {
  return linePath(rocPoints(curve));
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
  const attacks = [...styles.keys()].filter((name) => curves[name] !== undefined);
  const auroc = (name: string) => `AUROC ${decimal(curves[name]!.auroc)}`;
  const summary = attacks.map((name) => `${name} ${auroc(name)}`).join("; ");
  return (
    <figure className="chart line-chart" data-scorer={scorer}>
      <figcaption className="chart-title">{scorer}</figcaption>
      <LineChart
        title={`ROC curves: ${scorer}`}
        description={`True-positive rate (attacked images caught) against false-positive rate (clean images rejected) of ${scorer}, one line per attack: ${summary}. The dashed diagonal is chance.`}
        xLabel="false-positive rate (clean rejected)"
        yLabel="true-positive rate"
        xTicks={TICKS}
        yTicks={TICKS}
        diagonal
        legendLabel={`${scorer}: AUROC per attack`}
        series={attacks.map((name) => ({
          name,
          points: rocPoints(curves[name]!),
          style: styles.get(name)!,
          legend: `${name} — ${auroc(name)}`,
          tooltip: `${name}: ${auroc(name)}`,
        }))}
      />
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
  const styles = attackStyles(curves, attackNames);
  return (
    <div className="chart-panels" data-testid="roc-curves">
      {scorers.map((scorer) => (
        <RocChart key={scorer} scorer={scorer} curves={curves[scorer] ?? {}} styles={styles} />
      ))}
    </div>
  );
}
