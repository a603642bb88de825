import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobOf } from "../api/client";
import { jobFields, makeJob, stubFetch } from "../test/fixtures";
import { renderPage } from "../test/render";
import { JobsPage } from "./JobsPage";

afterEach(() => vi.unstubAllGlobals());

describe("JobsPage", () => {
  it("lists jobs with state and progress, shows errors verbatim, and cancels", async () => {
    const running = makeJob({ id: "aaaaaaaa11111111" });
    const failed: JobOf<"train_classifier"> = {
      ...jobFields({ id: "bbbbbbbb22222222", state: "failed", error: "dataset 'old' does not exist" }),
      type: "train_classifier",
      params: { type: "train_classifier" },
      result: null,
    };
    const { fetchStub, calls } = stubFetch({
      "GET /api/v1/jobs": () => [200, { items: [running, failed], total: 2 }],
      "POST /api/v1/jobs/aaaaaaaa11111111/cancel": () => [
        409,
        { detail: "job aaaaaaaa11111111 has already ended (succeeded)" },
      ],
    });
    vi.stubGlobal("fetch", fetchStub);
    renderPage(<JobsPage />);

    const runningRow = await screen.findByRole("row", { name: /Build adversarial set\s*aaaaaaaa/ });
    expect(within(runningRow).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "30");
    const failedRow = screen.getByRole("row", { name: /Train classifier\s*bbbbbbbb/ });
    expect(within(failedRow).getByText("dataset 'old' does not exist")).toBeInTheDocument();
    expect(within(failedRow).queryByRole("button", { name: /Cancel/ })).toBeNull();

    await userEvent.click(within(runningRow).getByRole("button", { name: "Cancel job aaaaaaaa" }));
    expect(await within(runningRow).findByRole("alert")).toHaveTextContent(
      "Cancel failed: job aaaaaaaa11111111 has already ended (succeeded) (HTTP 409)",
    );
    expect(calls.some((request) => request.method === "POST" && request.url.endsWith("/cancel"))).toBe(true);
  });

  it("filters by type and state through the API's query", async () => {
    const { fetchStub, calls } = stubFetch({ "GET /api/v1/jobs": () => [200, { items: [], total: 0 }] });
    vi.stubGlobal("fetch", fetchStub);
    renderPage(<JobsPage />);
    expect(await screen.findByText("No jobs.")).toBeInTheDocument();
    await userEvent.selectOptions(screen.getByLabelText("State"), "failed");
    await screen.findByText("No jobs.");
    await vi.waitFor(() => expect(new URL(calls.at(-1)!.url).searchParams.get("state")).toBe("failed"));
  });

  it("shows the API's error when the list cannot be read", async () => {
    const { fetchStub } = stubFetch({
      "GET /api/v1/jobs": () => [500, { detail: "internal error (OperationalError); see the server log" }],
    });
    vi.stubGlobal("fetch", fetchStub);
    renderPage(<JobsPage />);
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "internal error (OperationalError); see the server log (HTTP 500)",
    );
  });
});
