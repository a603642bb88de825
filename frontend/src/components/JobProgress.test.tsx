import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { makeJob, makeProgress } from "../test/fixtures";
import { JobProgress } from "./JobProgress";
import { ProgressBar } from "./ProgressBar";

describe("ProgressBar", () => {
  it("reports its value to assistive technology", () => {
    render(<ProgressBar label="Upload progress" value={0.42} />);
    const bar = screen.getByRole("progressbar", { name: "Upload progress" });
    expect(bar).toHaveAttribute("aria-valuenow", "42");
    expect(screen.getByText("42 %")).toBeInTheDocument();
  });

  it("is indeterminate while the total is unknown", () => {
    render(<ProgressBar label="Import" value={undefined} />);
    const bar = screen.getByRole("progressbar", { name: "Import" });
    expect(bar).not.toHaveAttribute("aria-valuenow");
    expect(bar).toHaveAttribute("aria-valuetext", "in progress");
  });
});

describe("JobProgress", () => {
  it("shows a later stage as its place among the stages, the whole job on the bar, and the time left", () => {
    const job = makeJob({
      progress: makeProgress("joining chunks", 0, 1, { number: 2, count: 2, eta: 75 }),
    });
    render(<JobProgress job={job} />);
    // Stage 1 (attacking) is done: half the job, whatever stage 2 has done yet.
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "50");
    expect(
      screen.getByText("stage 2 of 2: joining chunks — 0 / 1 · about 1 min 15 s left"),
    ).toBeInTheDocument();
  });

  it("shows a running job's stage, done/total and fraction, with a cancel button", async () => {
    const onCancel = vi.fn();
    render(<JobProgress job={makeJob()} onCancel={onCancel} />);
    expect(screen.getByText("running")).toBeInTheDocument();
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "30");
    expect(screen.getByText(/attacking: pgd 8\/255 — 3 \/ 10/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(onCancel).toHaveBeenCalledOnce();
  });

  it("shows a failed job's error exactly as the API wrote it, and no cancel button", () => {
    const error = "dataset 'gone' does not exist\n(check the id)";
    render(<JobProgress job={makeJob({ state: "failed", error })} onCancel={() => {}} />);
    expect(screen.getByRole("alert")).toHaveTextContent("dataset 'gone' does not exist (check the id)");
    expect(screen.getByRole("alert").querySelector(".error-text")?.textContent).toBe(error);
    expect(screen.queryByRole("button", { name: "Cancel" })).toBeNull();
    expect(screen.queryByRole("progressbar")).toBeNull();
  });

  it("fills the bar for a succeeded job even when its total was never reported", () => {
    render(<JobProgress job={makeJob({ state: "succeeded", progress: makeProgress("", 0, 0) })} />);
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "100");
  });
});
