import type { ReactNode } from "react";
import type { Job } from "../api/client";
import { isActive, useCancelJob, useJob } from "../api/queries";
import { duration, shortId } from "../lib/format";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";

const TYPE_NAMES: Record<string, string> = {
  train_classifier: "Train classifier",
  build_adversarial_set: "Build adversarial set",
  train_detector: "Train detector",
  evaluate: "Evaluate detector",
  evaluate_robustness: "Evaluate robustness",
  adversarial_training: "Adversarial training",
};

export function jobTypeName(type: string): string {
  return TYPE_NAMES[type] ?? type;
}

export function StateBadge({ state }: { state: Job["state"] }) {
  return <span className={`badge badge-${state}`}>{state}</span>;
}

/** A job's state, stage, done/total as a bar, and its error exactly as the API wrote it. */
export function JobProgress({
  job,
  onCancel,
  cancelling = false,
}: {
  job: Job;
  onCancel?: () => void;
  cancelling?: boolean;
}) {
  const { stage, done, total, fraction } = job.progress;
  const active = isActive(job.state);
  return (
    <div className="job-progress" data-job-id={job.id} data-state={job.state}>
      <div className="job-line">
        <span>
          {jobTypeName(job.type)} <code title={job.id}>{shortId(job.id)}</code>
        </span>
        <StateBadge state={job.state} />
        <span className="muted">{duration(job.started_at, job.finished_at)}</span>
        {active && onCancel ? (
          <button type="button" className="secondary" onClick={onCancel} disabled={cancelling}>
            {cancelling ? "Cancelling…" : "Cancel"}
          </button>
        ) : null}
      </div>
      {job.state !== "failed" && job.state !== "cancelled" ? (
        <>
          <ProgressBar
            label={`${jobTypeName(job.type)} progress`}
            value={job.state === "succeeded" ? 1 : total > 0 ? fraction : active ? undefined : 0}
          />
          <div className="muted small">
            {stage || (job.state === "queued" ? "waiting for a worker" : "")}
            {total > 0 ? ` — ${done} / ${total}` : ""}
          </div>
        </>
      ) : null}
      {job.error ? <ErrorMessage title={`Job ${job.state}`} error={job.error} /> : null}
    </div>
  );
}

/** A job followed live: polled until it ends, with a cancel button while it runs. */
export function JobTracker({ jobId }: { jobId: string }) {
  const job = useJob(jobId);
  const cancel = useCancelJob();
  if (job.error) return <ErrorMessage error={job.error} />;
  if (!job.data) return <p className="muted">Loading job {shortId(jobId)}…</p>;
  return (
    <>
      <JobProgress job={job.data} onCancel={() => cancel.mutate(jobId)} cancelling={cancel.isPending} />
      <ErrorMessage error={cancel.error} />
    </>
  );
}

/** A job followed live and, once it has succeeded, what ``children`` make of it. */
export function JobResult({ jobId, children }: { jobId: string; children: (job: Job) => ReactNode }) {
  const job = useJob(jobId);
  return (
    <>
      <JobTracker jobId={jobId} />
      {job.data?.state === "succeeded" ? children(job.data) : null}
    </>
  );
}
