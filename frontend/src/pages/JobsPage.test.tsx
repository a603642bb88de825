import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobOf } from "../api/client";
import { jobFields, makeJob, stubFetch } from "../test/fixtures";
import { postedJson, renderPage } from "../test/render";
import { JobsPage } from "./JobsPage";

afterEach(() => vi.unstubAllGlobals());

describe("JobsPage", () => {
  it("lists jobs with state and progress, shows errors verbatim, and cancels", async () => {
    const running = makeJob({ id: "aaaaaaaa11111111" });
    const failed: JobOf<"train_classifier"> = {
      ...jobFields({
        id: "bbbbbbbb22222222",
        name: "CNN on old scans",
        state: "failed",
        error: "dataset 'old' does not exist",
      }),
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

    const runningRow = await screen.findByRole("row", {
      name: /^fgsm, pgd at 8\/255 on net .*Build adversarial set/,
    });
    expect(within(runningRow).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "30");
    const failedRow = screen.getByRole("row", { name: /^CNN on old scans .*Train classifier/ });
    expect(within(failedRow).getByText("dataset 'old' does not exist")).toBeInTheDocument();
    expect(within(failedRow).queryByRole("button", { name: /Cancel/ })).toBeNull();

    await userEvent.click(
      within(runningRow).getByRole("button", { name: "Cancel fgsm, pgd at 8/255 on net" }),
    );
    expect(await within(runningRow).findByRole("alert")).toHaveTextContent(
      "Cancel failed: job aaaaaaaa11111111 has already ended (succeeded) (HTTP 409)",
    );
    expect(calls.some((request) => request.method === "POST" && request.url.endsWith("/cancel"))).toBe(true);
  });

  it("renames a job in place, and shows its id on request", async () => {
    const job = makeJob({ id: "aaaaaaaa11111111" });
    const { fetchStub, calls } = stubFetch({
      "GET /api/v1/jobs": () => [200, { items: [job], total: 1 }],
      "PATCH /api/v1/jobs/aaaaaaaa11111111": () => [200, { ...job, name: "March scans, PGD" }],
    });
    vi.stubGlobal("fetch", fetchStub);
    renderPage(<JobsPage />);
    await userEvent.click(await screen.findByRole("button", { name: "Id of fgsm, pgd at 8/255 on net" }));
    expect(screen.getByText("aaaaaaaa11111111")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Rename fgsm, pgd at 8/255 on net" }));
    const input = screen.getByRole("textbox", { name: "New name for fgsm, pgd at 8/255 on net" });
    await userEvent.clear(input);
    await userEvent.type(input, "March scans, PGD{Enter}");
    expect(await postedJson(calls, "PATCH")).toEqual({ name: "March scans, PGD" });
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
