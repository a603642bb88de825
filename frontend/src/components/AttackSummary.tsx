import { summaryParts } from "../lib/attacks";

/** An attack's one-line summary from the API, its ``literals`` set as code. */
export function AttackSummary({ summary }: { summary: string }) {
  if (!summary) return null;
  return (
    <span className="attack-summary">
      {summaryParts(summary).map(([text, code], i) => (code ? <code key={i}>{text}</code> : text))}
    </span>
  );
}
