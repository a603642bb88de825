import { formatSeconds, percent, type Norm } from "../lib/format";
import {
  attacksOn,
  baseDefense,
  budgetLabel,
  curveOf,
  gridOf,
  isBpda,
  NO_DEFENSE,
  NORM_LABEL,
  NORMS,
  type AdaptiveReport,
  type ModelComparison,
  type RobustnessReport,
} from "../lib/robustness";
import { AccuracyChart, type AccuracyLine } from "./AccuracyChart";
import { AccuracyTable } from "./AccuracyTable";
import { EMPHASIS, lineStyles, type LineStyle } from "./LineChart";

export const WORST_CASE = "worst case";
/** The field's standard number (RobustBench's) per grid: when the result has it, it leads. */
export const AUTOATTACK: Record<Norm, string> = { linf: "autoattack", l2: "autoattack-l2" };
const AUTOATTACK_LABEL: Record<Norm, string> = {
  linf: "AutoAttack (standard)",
  l2: "AutoAttack L2 (standard)",
};
const BPDA_DASH = "6 3";

/** One chart per defense setting and grid: a line per attack, and the per-image worst case
 * over all attacks of that grid in bold black. */
export function DefenseChart({
  report,
  defense,
  styles,
  norm = "linf",
}: {
  report: RobustnessReport;
  defense: string;
  styles: Map<string, LineStyle>;
  norm?: Norm;
}) {
  const { epsilons, worstCase } = gridOf(report, norm);
  const lines: AccuracyLine[] = attacksOn(report, norm).map((attack) => ({
    name: attack,
    values: curveOf(report, defense, attack, norm)?.accuracy ?? [],
    style: styles.get(attack)!,
  }));
  lines.push({
    name: WORST_CASE,
    legend: `${WORST_CASE} (every attack)`,
    values: worstCase[defense] ?? [],
    style: EMPHASIS,
    emphasis: true,
  });
  return (
    <AccuracyChart
      title={`Accuracy against ${BUDGET_NAME[norm]}: ${defense}`}
      caption={`${defense} — clean accuracy ${percent(report.clean_accuracy[defense])}`}
      epsilons={epsilons}
      lines={lines}
      legendLabel={`${defense}: ${norm === "linf" ? "" : "L2 "}attacks`}
      norm={norm}
    />
  );
}

/** How a grid's budget is named in chart titles. */
const BUDGET_NAME: Record<Norm, string> = { linf: "ε", l2: "the L2 radius" };

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

/** Every defense setting's worst case on one grid in one chart. */
export function WorstCaseChart({ report, norm = "linf" }: { report: RobustnessReport; norm?: Norm }) {
  const styles = defenseStyles(report.defenses);
  const { epsilons, worstCase } = gridOf(report, norm);
  return (
    <AccuracyChart
      title={`Worst-case accuracy against ${BUDGET_NAME[norm]} per defense`}
      caption={`Worst case per defense${norm === "linf" ? "" : ", L2"} (dashed: attacked with BPDA)`}
      epsilons={epsilons}
      lines={report.defenses.map((defense) => ({
        name: defense,
        legend: isBpda(defense) ? `${defense} (dashed)` : defense,
        values: worstCase[defense] ?? [],
        style: styles.get(defense)!,
      }))}
      legendLabel={`Worst case per defense${norm === "linf" ? "" : ", L2"}`}
      norm={norm}
    />
  );
}

/** The headline numbers: AutoAttack at the largest budget of each grid it ran on. */
function autoAttackHeadlines(report: RobustnessReport): { label: string; value: number | null }[] {
  return NORMS.flatMap((norm) => {
    const { epsilons } = gridOf(report, norm);
    const value = curveOf(report, NO_DEFENSE, AUTOATTACK[norm], norm)?.accuracy.at(-1);
    const largest = epsilons.at(-1);
    return value === undefined || largest === undefined
      ? []
      : [
          {
            label: `${AUTOATTACK_LABEL[norm]} robust accuracy at ε${norm === "l2" ? "₂" : ""} = ${budgetLabel(largest, norm)}`,
            value,
          },
        ];
  });
}

/** One grid's charts and tables (L∞: ε in 1/255 steps; L2: radii). */
function GridView({ report, norm }: { report: RobustnessReport; norm: Norm }) {
  const attacks = attacksOn(report, norm);
  const styles = lineStyles(report.attacks);
  const { epsilons, worstCase } = gridOf(report, norm);
  const headline = AUTOATTACK[norm];
  const grid = norm === "linf" ? "" : ", L2 radii";
  return (
    <section aria-label={`${NORM_LABEL[norm]} budgets`}>
      <h3>{norm === "linf" ? "Accuracy against ε (L∞)" : "Accuracy against the L2 radius ε₂"}</h3>
      <div className="chart-panels">
        {report.defenses.map((defense) => (
          <DefenseChart key={defense} report={report} defense={defense} styles={styles} norm={norm} />
        ))}
        {report.defenses.length > 1 ? <WorstCaseChart report={report} norm={norm} /> : null}
      </div>
      {report.defenses.map((defense) => (
        <AccuracyTable
          key={defense}
          caption={`${defense}${grid} (clean accuracy ${percent(report.clean_accuracy[defense])})`}
          rowHeader="attack"
          epsilons={epsilons}
          norm={norm}
          rows={[
            ...[
              ...attacks.filter((name) => name === headline),
              ...attacks.filter((name) => name !== headline),
            ].map((attack) => ({
              name: attack === headline ? AUTOATTACK_LABEL[norm] : attack,
              values: curveOf(report, defense, attack, norm)?.accuracy ?? [],
              emphasis: attack === headline,
            })),
            { name: WORST_CASE, values: worstCase[defense] ?? [], emphasis: true },
          ]}
        />
      ))}
      {report.defenses.length > 1 ? (
        <AccuracyTable
          caption={`Worst case per defense${grid}`}
          rowHeader="defense"
          epsilons={epsilons}
          norm={norm}
          rows={report.defenses.map((defense) => ({
            name: defense,
            clean: report.clean_accuracy[defense] ?? null,
            values: worstCase[defense] ?? [],
          }))}
        />
      ) : null}
    </section>
  );
}

/** The whole robustness result: per grid (L∞, then L2 when an L2 attack ran) charts, then
 * the numbers as tables; the decision-based attack against its query budget. */
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
  const norms = NORMS.filter((norm) => attacksOn(report, norm).length > 0);
  return (
    <div className="report" data-testid="robustness-report">
      <dl className="stats">
        {autoAttackHeadlines(report).map(({ label, value }) => (
          <div className="headline" key={label}>
            <dt>{label}</dt>
            <dd>{percent(value)}</dd>
          </div>
        ))}
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
        Step-size attacks use α = 2.5·ε/steps. L∞ attacks run at each ε, L2 attacks (pgd-l2, apgd-l2,
        autoattack-l2, …) at each L2 radius ε₂. Minimal-perturbation attacks (CW, DeepFool, HopSkipJump) run
        once: an image counts as broken at a budget when they fooled the model within it, on both grids. The
        worst case is per image: correct under every attack of the grid. {AUTOATTACK_LABEL.linf} is APGD-CE,
        APGD-T, FAB-T and Square, each on what the previous left robust.
      </p>
      {norms.map((norm) => (
        <GridView key={norm} report={report} norm={norm} />
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
