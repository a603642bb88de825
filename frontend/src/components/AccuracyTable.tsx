import { percent, type Norm } from "../lib/format";
import { budgetLabel } from "../lib/robustness";

export interface AccuracyRow {
  name: string;
  /** One accuracy per budget. */
  values: (number | null)[];
  /** Accuracy without attack, as its own column (when any row has one). */
  clean?: number | null;
  /** The row that matters most (the worst case): set in bold. */
  emphasis?: boolean;
}

/** Rows (attacks, defenses, models) × budgets ε, accuracies as percentages. */
export function AccuracyTable({
  caption,
  rowHeader,
  epsilons,
  rows,
  norm = "linf",
}: {
  caption: string;
  rowHeader: string;
  epsilons: number[];
  rows: AccuracyRow[];
  /** The norm the budgets are measured in (L∞ unless told). */
  norm?: Norm;
}) {
  const clean = rows.some((row) => row.clean !== undefined);
  // ε = 0 is the clean accuracy: one column for it, called clean, never two.
  const columns = epsilons.map((eps, index) => ({ eps, index })).filter(({ eps }) => !(clean && eps === 0));
  const cell = (value: number | null | undefined, strong: boolean | undefined) =>
    strong ? <strong>{percent(value)}</strong> : percent(value);
  return (
    <div className="table-wrap">
      <table className="data accuracy-table">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{rowHeader}</th>
            {clean ? (
              <th scope="col" className="num">
                clean
              </th>
            ) : null}
            {columns.map(({ eps }) => (
              <th scope="col" className="num" key={eps}>
                {eps === 0 ? "clean" : `ε${norm === "l2" ? "₂" : ""} ${budgetLabel(eps, norm)}`}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.name} className={row.emphasis ? "emphasis-row" : undefined}>
              <th scope="row">{row.emphasis ? <strong>{row.name}</strong> : row.name}</th>
              {clean ? <td className="num">{cell(row.clean, row.emphasis)}</td> : null}
              {columns.map(({ eps, index }) => (
                <td className="num" key={eps}>
                  {cell(row.values[index], row.emphasis)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
