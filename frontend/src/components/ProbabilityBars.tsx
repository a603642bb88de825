import { percent, ranked } from "../lib/format";

/** Names with their probabilities as horizontal bars, most likely first. */
export function ProbabilityBars({
  probabilities,
  label,
}: {
  probabilities: Record<string, number>;
  label: string;
}) {
  const entries = ranked(probabilities);
  if (entries.length === 0) return null;
  return (
    <dl className="probabilities" aria-label={label}>
      {entries.map(([name, value]) => (
        <div key={name} className="probability">
          <dt>{name}</dt>
          <dd>
            <span className="probability-bar" aria-hidden="true">
              <span style={{ width: `${Math.max(0, Math.min(1, value)) * 100}%` }} />
            </span>
            <span className="probability-value">{percent(value)}</span>
          </dd>
        </div>
      ))}
    </dl>
  );
}
