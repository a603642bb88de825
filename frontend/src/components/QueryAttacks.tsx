import { useClearQueryClient, useQueryAttacks } from "../api/queries";
import { formatWindow } from "../lib/format";
import { ErrorMessage } from "./ErrorMessage";

function formatTime(iso: string): string {
  return new Date(iso).toLocaleTimeString();
}

/** The query watch's flagged clients: who sent streams of near-copies, as query-based
 * black-box attacks do, with a button to clear a false alarm. */
export function QueryAttacks() {
  const flagged = useQueryAttacks();
  const clear = useClearQueryClient();
  const data = flagged.data;
  if (!data) return <ErrorMessage title="Could not read the query watch" error={flagged.error} />;
  if (!data.enabled)
    return (
      <p className="muted">The query watch is off (ADVGUARD_QUERY_WATCH=false): predict keeps no history.</p>
    );
  return (
    <div>
      <p className="muted small">
        Every image sent to predict is fingerprinted (hashes of quantised pixel runs, never the pixels) and
        compared with the same client&apos;s queries of the last {formatWindow(data.window)}. A client is
        flagged when one of its images nearly duplicates {data.flag_at} or more of its earlier ones; a clinic
        re-sending or re-exporting a scan does not come close. Policy:{" "}
        {data.policy === "refuse" ? "refuse (429)" : "flag"}.
      </p>
      {data.clients.length === 0 ? (
        <p role="status">No client flagged in the last {formatWindow(data.window)}.</p>
      ) : (
        <div className="table-wrap">
          <table className="data" aria-label="Flagged clients">
            <thead>
              <tr>
                <th>Client</th>
                <th>First flagged</th>
                <th>Last flagged</th>
                <th>Most matches</th>
                <th>Queries</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {data.clients.map((row) => (
                <tr key={row.client}>
                  <td>{row.client}</td>
                  <td>{formatTime(row.first_flagged)}</td>
                  <td>{formatTime(row.last_flagged)}</td>
                  <td>{row.matches}</td>
                  <td>{row.queries}</td>
                  <td>
                    <button
                      type="button"
                      className="secondary"
                      disabled={clear.isPending}
                      onClick={() => clear.mutate(row.client)}
                    >
                      Clear
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ErrorMessage title="Could not clear the client" error={clear.error} />
      <ErrorMessage title="Could not refresh the query watch" error={flagged.error} />
    </div>
  );
}
