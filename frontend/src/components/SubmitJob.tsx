import { ErrorMessage } from "./ErrorMessage";

/** A job form's submit button, then what went wrong: the form's own check (``problem``),
 * the API refusing the job, or a list the form needs that could not be loaded. */
export function SubmitJob({
  label,
  disabled,
  problem,
  startError,
  loadError,
}: {
  label: string;
  disabled: boolean;
  problem?: string | null;
  startError: unknown;
  loadError?: unknown;
}) {
  return (
    <>
      <div className="actions">
        <button type="submit" disabled={disabled}>
          {label}
        </button>
      </div>
      <ErrorMessage error={problem} />
      <ErrorMessage title="Could not start the job" error={startError} />
      <ErrorMessage error={loadError} />
    </>
  );
}
