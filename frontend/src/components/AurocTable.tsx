import { decimal, percent } from "../lib/format";
import { baselineNames, type ReportRow, type UnseenRow } from "../lib/report";

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

/** Attacks the detector never trained on: how well it tells them from clean scans, and
 * how many it catches at its operating threshold. */
export function UnseenTable({ rows }: { rows: UnseenRow[] }) {
  if (rows.length === 0) {
    return <p className="muted">This report ran no attack outside the detector's training.</p>;
  }
  return (
    <div className="table-wrap">
      <table className="data">
        <caption>Attacks never in the detector's training (clean test images, 8-bit)</caption>
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
              AUROC successful
            </th>
            <th scope="col" className="num">
              detected (successful)
            </th>
            <th scope="col" className="num">
              AUROC all
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={`${row.attack} ${row.eps}`}>
              <th scope="row">{row.attack}</th>
              <td>{row.eps}</td>
              <td className="num">{row.images}</td>
              <td className="num">{row.successful}</td>
              <td className="num">{decimal(row.auroc_successful)}</td>
              <td className="num">{percent(row.tpr_successful)}</td>
              <td className="num">{decimal(row.auroc)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
