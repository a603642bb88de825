import { percent } from "../lib/format";
import { finitePairs } from "../lib/shape";
import { chanceWarning, classAccuracies, type TrainingSummary } from "../lib/training";
import { ConfusionHeatmap } from "./ConfusionHeatmap";
import { LineChart, lineStyles, type Tick } from "./LineChart";

const PERCENT_TICKS: Tick[] = [0, 0.25, 0.5, 0.75, 1].map((at) => ({ at, label: `${at * 100} %` }));

/** Epoch ticks along 0..1: the first, the last and a few between. */
function epochTicks(count: number): Tick[] {
  const every = Math.max(1, Math.ceil(count / 6));
  return Array.from({ length: count }, (_, i) => i)
    .filter((i) => i % every === 0 || i === count - 1)
    .map((i) => ({ at: count === 1 ? 0.5 : i / (count - 1), label: String(i + 1) }));
}

/** Training loss, validation loss and validation accuracy per epoch (losses scaled to the
 * largest one, so that both fit the same 0..1 axis beside the accuracy). */
function LearningCurves({ history }: { history: TrainingSummary["history"] }) {
  if (history.length === 0) return null;
  const xs = history.map((_, i) => (history.length === 1 ? 0.5 : i / (history.length - 1)));
  const losses = history.flatMap((epoch) => [epoch.train_loss, epoch.val_loss]);
  const peak = Math.max(1e-9, ...losses.filter((value): value is number => value !== null));
  const styles = lineStyles(["training loss", "validation loss", "validation accuracy"]);
  const line = (name: string, values: (number | null)[], shown: (value: number | null) => string) => ({
    name,
    points: finitePairs(xs, values),
    style: styles.get(name)!,
    legend: name,
    tooltip: `${name}: ${values.map(shown).join(", ")}`,
  });
  const loss = (value: number | null) => (value === null ? "–" : value.toFixed(3));
  return (
    <figure className="chart line-chart">
      <figcaption className="chart-title">Learning curves</figcaption>
      <LineChart
        title="Learning curves"
        description={`Per epoch: training loss, validation loss (both as a share of the largest, ${peak.toFixed(3)}) and validation accuracy.`}
        xLabel="epoch"
        yLabel={`accuracy · loss ÷ ${peak.toFixed(2)}`}
        xTicks={epochTicks(history.length)}
        yTicks={PERCENT_TICKS}
        legendLabel="Learning curves"
        markers={history.length < 12}
        series={[
          line(
            "training loss",
            history.map((epoch) => (epoch.train_loss === null ? null : epoch.train_loss / peak)),
            (value) => loss(value === null ? null : value * peak),
          ),
          line(
            "validation loss",
            history.map((epoch) => (epoch.val_loss === null ? null : epoch.val_loss / peak)),
            (value) => loss(value === null ? null : value * peak),
          ),
          line(
            "validation accuracy",
            history.map((epoch) => epoch.val_accuracy),
            (value) => percent(value),
          ),
        ]}
      />
    </figure>
  );
}

/** How a trained classifier did: a warning when it is no better than guessing, the
 * learning curves, accuracy per class and the confusion matrix on the test split. */
export function TrainingReport({ summary }: { summary: TrainingSummary }) {
  const warning = chanceWarning(summary);
  return (
    <div className="training-report">
      {warning ? (
        <p className="warning" role="alert">
          {warning}
        </p>
      ) : null}
      <div className="columns">
        <LearningCurves history={summary.history} />
        <ConfusionHeatmap
          labels={summary.class_names}
          matrix={summary.confusion_matrix}
          title="Confusion matrix: true class (rows) against predicted class (columns), test split"
          rowsTitle="true class"
          columnsTitle="predicted"
          caption="Test images by true class (rows) and the class the model gave (columns); each cell's share is of its row, so the diagonal is each class's accuracy."
        />
      </div>
      <div className="table-wrap">
        <table className="data">
          <caption>Test accuracy per class</caption>
          <thead>
            <tr>
              <th scope="col">class</th>
              <th scope="col" className="num">
                test images
              </th>
              <th scope="col" className="num">
                accuracy
              </th>
            </tr>
          </thead>
          <tbody>
            {classAccuracies(summary).map((item) => (
              <tr key={item.name}>
                <th scope="row">{item.name}</th>
                <td className="num">{item.images}</td>
                <td className="num">{percent(item.accuracy)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
