import type { ReactNode } from "react";
import { isJobOf, type Job, type JobOf, type JobType } from "../api/client";
import { isActive, useCancelJob, useJob } from "../api/queries";
import { duration, formatSeconds, shortId } from "../lib/format";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";

/** Every job type's name; a job type the API adds fails the build here until it is named. */
export const JOB_TYPE_NAMES: Record<JobType, string> = {
  train_classifier: "Train classifier",
  build_adversarial_set: "Build adversarial set",
  train_detector: "Train detector",
  evaluate: "Evaluate detector",
  evaluate_robustness: "Evaluate robustness",
  model_report: "Report to hand over",
  adversarial_training: "Adversarial training",
};

export function jobTypeName(type: JobType): string {
  return JOB_TYPE_NAMES[type];
}

export function StateBadge({ state }: { state: Job["state"] }) {
  return <span className={`badge badge-${state}`}>{state}</span>;
}

/** Where a job stands in words: "stage 2 of 3: training the detector — 40 / 150 · about
 * 1 min 20 s left". */
export function progressText(job: Job): string {
  const { stage, done, total, stage_number: number, stage_count: count, eta_s: eta } = job.progress;
  if (!stage) return job.state === "queued" ? "waiting for a worker" : "";
  const step = count > 1 ? `stage ${number} of ${count}: ` : "";
  const counted = total > 0 ? ` — ${done} / ${total}` : "";
  const left = isActive(job.state) && eta !== null ? ` · about ${formatSeconds(eta)} left` : "";
  return `${step}${stage}${counted}${left}`;
}

/** The bar's value: the whole job's progress (it never goes back), unknown while a running
 * job has reported nothing yet. */
export function progressValue(job: Job): number | undefined {
  if (job.state === "succeeded") return 1;
  if (job.progress.total > 0 || job.progress.stage_number > 1) return job.progress.overall;
  return isActive(job.state) ? undefined : 0;
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
  const active = isActive(job.state);
  return (
    <div className="job-progress" data-job-id={job.id} data-state={job.state}>
      <div className="job-line">
        <span>
          <strong>{job.name}</strong> <span className="muted small">{jobTypeName(job.type)}</span>
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
          <ProgressBar label={`${jobTypeName(job.type)} progress`} value={progressValue(job)} />
          <div className="muted small">{progressText(job)}</div>
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
