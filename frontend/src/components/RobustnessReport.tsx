import { formatSeconds, percent } from "../lib/format";
import {
  baseDefense,
  curveOf,
  isBpda,
  NO_DEFENSE,
  type AdaptiveReport,
  type ModelComparison,
  type RobustnessReport,
} from "../lib/robustness";
import { AccuracyChart, type AccuracyLine } from "./AccuracyChart";
import { AccuracyTable } from "./AccuracyTable";
import { EMPHASIS, lineStyles, type LineStyle } from "./LineChart";

export const WORST_CASE = "worst case";
/** The field's standard number (RobustBench's): when the result has it, it leads. */
export const AUTOATTACK = "autoattack";
const AUTOATTACK_LABEL = "AutoAttack (standard)";

/** The attacks in the order the tables give them: AutoAttack first, then as evaluated. */
function headlineFirst(attacks: string[]): string[] {
  return [...attacks.filter((name) => name === AUTOATTACK), ...attacks.filter((name) => name !== AUTOATTACK)];
}
const BPDA_DASH = "6 3";

/** One chart per defense setting: a line per attack, and the per-image worst case over
 * all attacks in bold black. */
export function DefenseChart({
  report,
  defense,
  styles,
}: {
  report: RobustnessReport;
  defense: string;
  styles: Map<string, LineStyle>;
}) {
  const lines: AccuracyLine[] = report.attacks.map((attack) => ({
    name: attack,
    values: curveOf(report, defense, attack)?.accuracy ?? [],
    style: styles.get(attack)!,
  }));
  lines.push({
    name: WORST_CASE,
    legend: `${WORST_CASE} (every attack)`,
    values: report.worst_case[defense] ?? [],
    style: EMPHASIS,
    emphasis: true,
  });
  return (
    <AccuracyChart
      title={`Accuracy against ε: ${defense}`}
      caption={`${defense} — clean accuracy ${percent(report.clean_accuracy[defense])}`}
      epsilons={report.epsilons}
      lines={lines}
      legendLabel={`${defense}: attacks`}
    />
  );
}

/** The style of each defense setting when they are compared: a colour per preprocessing
 * (the undefended model in black), solid when attacked plainly, dashed with BPDA. */
export function defenseStyles(defenses: string[]): Map<string, LineStyle> {
  const bases = [...new Set(defenses.map(baseDefense))].filter((name) => name !== NO_DEFENSE);
  const colours = lineStyles(bases);
  return new Map(
    defenses.map((label) => {
      const colour =
        baseDefense(label) === NO_DEFENSE ? EMPHASIS.colour : colours.get(baseDefense(label))!.colour;
      return [label, { colour, dash: isBpda(label) ? BPDA_DASH : "" }];
    }),
  );
}

/** Every defense setting's worst case in one chart. */
export function WorstCaseChart({ report }: { report: RobustnessReport }) {
  const styles = defenseStyles(report.defenses);
  return (
    <AccuracyChart
      title="Worst-case accuracy against ε per defense"
      caption="Worst case per defense (dashed: attacked with BPDA)"
      epsilons={report.epsilons}
      lines={report.defenses.map((defense) => ({
        name: defense,
        legend: isBpda(defense) ? `${defense} (dashed)` : defense,
        values: report.worst_case[defense] ?? [],
        style: styles.get(defense)!,
      }))}
      legendLabel="Worst case per defense"
    />
  );
}

/** The whole robustness result: charts, then the numbers as tables. */
export function RobustnessView({
  report,
  artifacts,
  took,
}: {
  report: RobustnessReport;
  artifacts: Record<string, string>;
  /** How long the job took, start to end (the curves' own time leaves out the rest). */
  took?: string;
}) {
  const styles = lineStyles(report.attacks);
  const autoattack = report.attacks.includes(AUTOATTACK)
    ? curveOf(report, NO_DEFENSE, AUTOATTACK)?.accuracy.at(-1)
    : undefined;
  return (
    <div className="report" data-testid="robustness-report">
      <dl className="stats">
        {autoattack !== undefined ? (
          <div className="headline">
            <dt>{AUTOATTACK_LABEL} robust accuracy at the largest ε</dt>
            <dd>{percent(autoattack)}</dd>
          </div>
        ) : null}
        <div>
          <dt>Test images</dt>
          <dd>{report.images}</dd>
        </div>
        <div>
          <dt>Clean accuracy</dt>
          <dd>{percent(report.clean_accuracy[NO_DEFENSE])}</dd>
        </div>
        <div>
          <dt>Worst case at the largest ε</dt>
          <dd>{percent(report.worst_case[NO_DEFENSE]?.at(-1))}</dd>
        </div>
        <div>
          <dt>Took</dt>
          <dd>{took ?? formatSeconds(report.seconds)}</dd>
        </div>
      </dl>
      <p className="muted small">
        Step-size attacks use α = 2.5·ε/steps. L2 attacks (CW, DeepFool, HopSkipJump, and the L2-ball attacks
        at their own radius) run once: an image counts as broken at ε when they fooled the model with an L∞
        change of at most ε. The worst case is per image: correct under every attack. {AUTOATTACK_LABEL} is
        APGD-CE, APGD-T, FAB-T and Square, each on what the previous left robust.
      </p>
      <h3>Accuracy against ε</h3>
      <div className="chart-panels">
        {report.defenses.map((defense) => (
          <DefenseChart key={defense} report={report} defense={defense} styles={styles} />
        ))}
        {report.defenses.length > 1 ? <WorstCaseChart report={report} /> : null}
      </div>
      <h3>Accuracy per attack and budget</h3>
      {report.defenses.map((defense) => (
        <AccuracyTable
          key={defense}
          caption={`${defense} (clean accuracy ${percent(report.clean_accuracy[defense])})`}
          rowHeader="attack"
          epsilons={report.epsilons}
          rows={[
            ...headlineFirst(report.attacks).map((attack) => ({
              name: attack === AUTOATTACK ? AUTOATTACK_LABEL : attack,
              values: curveOf(report, defense, attack)?.accuracy ?? [],
              emphasis: attack === AUTOATTACK,
            })),
            { name: WORST_CASE, values: report.worst_case[defense] ?? [], emphasis: true },
          ]}
        />
      ))}
      {report.defenses.map((defense) => {
        const budgeted = report.query_budgets.filter((curve) => curve.defense === defense);
        return budgeted.length > 0 ? (
          <AccuracyTable
            key={`queries-${defense}`}
            caption={`${defense}: decision-based attack (top-1 labels only) by query budget per image`}
            rowHeader="attack, queries"
            epsilons={report.epsilons}
            rows={budgeted.map((curve) => ({
              name: `${curve.attack} ≤ ${curve.queries.toLocaleString("en")}`,
              values: curve.accuracy,
            }))}
          />
        ) : null;
      })}
      {report.defenses.length > 1 ? (
        <AccuracyTable
          caption="Worst case per defense"
          rowHeader="defense"
          epsilons={report.epsilons}
          rows={report.defenses.map((defense) => ({
            name: defense,
            clean: report.clean_accuracy[defense] ?? null,
            values: report.worst_case[defense] ?? [],
          }))}
        />
      ) : null}
      <p className="small">
        {artifacts.plot ? (
          <a href={artifacts.plot} download>
            Download the plot (robustness.png)
          </a>
        ) : null}{" "}
        {artifacts.markdown ? <a href={artifacts.markdown}>robustness.md</a> : null}{" "}
        {artifacts.json ? <a href={artifacts.json}>robustness.json</a> : null}
      </p>
    </div>
  );
}

/** The adaptive test of a detector: protected accuracy (rejected, or still classified
 * correctly) under an attack that knows the detector, dashed: one that does not. */
export function AdaptiveView({ adaptive }: { adaptive: AdaptiveReport }) {
  const styles = lineStyles(adaptive.settings.map((setting) => setting.name));
  const lines: AccuracyLine[] = adaptive.settings.flatMap((setting) => {
    const style = styles.get(setting.name)!;
    const adaptiveLine = {
      name: setting.name,
      values: setting.protected_accuracy,
      style: { ...style, dash: "" },
    };
    return setting.non_adaptive
      ? [
          adaptiveLine,
          {
            name: `${setting.name} (non-adaptive)`,
            values: setting.non_adaptive,
            style: { ...style, dash: BPDA_DASH },
          },
        ]
      : [adaptiveLine];
  });
  return (
    <div data-testid="adaptive-report">
      <p className="muted small">
        Protected accuracy: the share of {adaptive.images ?? "the"} attacked images that the detector rejected
        or that were still classified correctly, by an attack that knows the detector (dashed: the same attack
        ignoring it).
      </p>
      <div className="chart-panels">
        <AccuracyChart
          title="Protected accuracy against ε (adaptive attack)"
          caption="Adaptive attack on the guard"
          epsilons={adaptive.epsilons}
          lines={lines}
          legendLabel="Adaptive test settings"
        />
      </div>
      <AccuracyTable
        caption="Protected accuracy under the adaptive attack"
        rowHeader="setting"
        epsilons={adaptive.epsilons}
        rows={lines.map((line) => ({ name: line.name, values: line.values }))}
      />
    </div>
  );
}

/** The start model against the adversarially trained one under PGD. */
export function ComparisonView({ comparison }: { comparison: ModelComparison }) {
  const styles = lineStyles(comparison.models.map((model) => model.name));
  const budgets = comparison.epsilons.flatMap((eps, i) => (eps > 0 ? [i] : []));
  return (
    <div data-testid="training-comparison">
      <div className="chart-panels">
        <AccuracyChart
          title="Accuracy against ε before and after adversarial training"
          caption={`Under ${comparison.attacks.join(" and ") || "PGD"} (worst case per image)`}
          epsilons={comparison.epsilons}
          lines={comparison.models.map((model) => ({
            name: model.name,
            values: model.accuracy,
            style: styles.get(model.name)!,
          }))}
          legendLabel="Models"
        />
      </div>
      <AccuracyTable
        caption={`Accuracy on ${comparison.images ?? "the"} test images, clean and under attack`}
        rowHeader="model"
        epsilons={budgets.map((i) => comparison.epsilons[i]!)}
        rows={comparison.models.map((model) => ({
          name: model.name,
          clean: model.clean_accuracy,
          values: budgets.map((i) => model.accuracy[i] ?? null),
        }))}
      />
    </div>
  );
}
