/** A labelled progress bar; ``value`` in [0, 1], or undefined while the total is unknown. */
export function ProgressBar({ value, label }: { value: number | undefined; label: string }) {
  const known = value !== undefined && Number.isFinite(value);
  const clamped = known ? Math.min(1, Math.max(0, value)) : 0;
  const text = known ? `${Math.round(clamped * 100)} %` : "…";
  return (
    <div className="progress">
      <div
        className={`progress-track${known ? "" : " progress-busy"}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={known ? Math.round(clamped * 100) : undefined}
        aria-valuetext={known ? text : "in progress"}
      >
        <div className="progress-fill" style={{ width: known ? `${clamped * 100}%` : "30%" }} />
      </div>
      <span className="progress-text">{text}</span>
    </div>
  );
}
