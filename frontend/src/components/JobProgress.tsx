import type { ReactNode } from "react";
import { isJobOf, type Job, type JobOf, type JobType } from "../api/client";
import { isActive, useCancelJob, useJob } from "../api/queries";
import { duration, shortId } from "../lib/format";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";

/** Every job type's name; a job type the API adds fails the build here until it is named. */
export const JOB_TYPE_NAMES: Record<JobType, string> = {
  train_classifier: "Train classifier",
  build_adversarial_set: "Build adversarial set",
  train_detector: "Train detector",
  evaluate: "Evaluate detector",
  evaluate_robustness: "Evaluate robustness",
  adversarial_training: "Adversarial training",
};

export function jobTypeName(type: JobType): string {
  return JOB_TYPE_NAMES[type];
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
/** A job's tracker, then, once it has succeeded, its result drawn by ``children`` (a job of
 * another type than ``type`` is named as such instead). */
export function JobResult<T extends JobType>({
  jobId,
  type,
  children,
}: {
  jobId: string;
  type: T;
  children: (job: JobOf<T>) => ReactNode;
}) {
  const job = useJob(jobId).data;
  let result: ReactNode = null;
  if (job?.state === "succeeded")
    result = isJobOf(job, type) ? (
      children(job)
    ) : (
      <ErrorMessage
        error={`job ${shortId(jobId)} is a ${jobTypeName(job.type)} job, not ${jobTypeName(type).toLowerCase()}`}
      />
    );
  return (
    <>
      <JobTracker jobId={jobId} />
      {result}
    </>
  );
}
