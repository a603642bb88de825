import { decimal, percent } from "../lib/format";
import { baselineNames, type ReportRow } from "../lib/report";

/** AUROC, detection rate and naming per attack and budget, with the baselines' AUROC. */
export function AurocTable({ rows }: { rows: ReportRow[] }) {
  const baselines = baselineNames(rows);
  if (rows.length === 0) return <p className="muted">The report has no attacked test images.</p>;
  return (
    <div className="table-wrap">
      <table className="data">
        <caption>AUROC per attack and budget (test split; clean images vs attacked)</caption>
        <thead>
          <tr>
            <th scope="col">attack</th>
            <th scope="col">ε</th>
            <th scope="col" className="num">
              images
            </th>
            <th scope="col" className="num">
              successful
            </th>
            <th scope="col" className="num">
              AUROC
            </th>
            <th scope="col" className="num">
              AUROC successful
            </th>
            <th scope="col" className="num">
              detected (TPR)
            </th>
            <th scope="col" className="num">
              named (successful)
            </th>
            {baselines.map((name) => (
              <th scope="col" className="num" key={name}>
                AUROC {name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={`${row.attack} ${row.eps}`}>
              <th scope="row">{row.attack}</th>
              <td>{row.eps}</td>
              <td className="num">{row.images}</td>
              <td className="num">{row.successful}</td>
              <td className="num">{decimal(row.auroc)}</td>
              <td className="num">{decimal(row.auroc_successful)}</td>
              <td className="num">{percent(row.tpr)}</td>
              <td className="num">{percent(row.named_successful)}</td>
              {baselines.map((name) => (
                <td className="num" key={name}>
                  {decimal(row.baselines?.[name])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
