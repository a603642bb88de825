import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import { makeVerdict, stubFetch } from "../test/fixtures";
import { renderPage } from "../test/render";
import { formatWindow } from "../lib/format";
import { QueryAttacks } from "./QueryAttacks";
import { VerdictCard } from "./VerdictCard";

const FLAGGED = {
  client: "address:10.0.0.7",
  first_flagged: "2026-11-30T10:00:00Z",
  last_flagged: "2026-11-30T10:02:00Z",
  matches: 41,
  queries: 57,
};

afterEach(() => vi.unstubAllGlobals());

describe("QueryAttacks", () => {
  it("lists the flagged clients and clears one with DELETE", async () => {
    let clients = [FLAGGED];
    const { fetchStub, calls } = stubFetch({
      "GET /api/v1/query-attacks": () => [
        200,
        { enabled: true, policy: "refuse", window: 1800, flag_at: 8, clients },
      ],
      [`DELETE /api/v1/query-attacks/${encodeURIComponent("address:10.0.0.7")}`]: () => {
        clients = [];
        return [204, null];
      },
    });
    vi.stubGlobal("fetch", fetchStub);
    renderPage(<QueryAttacks />);
    const table = await screen.findByRole("table", { name: "Flagged clients" });
    const row = within(table).getByRole("row", { name: /address:10\.0\.0\.7/ });
    expect(
      within(row)
        .getAllByRole("cell")
        .map((cell) => cell.textContent),
    ).toEqual(expect.arrayContaining(["address:10.0.0.7", "41", "57"]));
    expect(screen.getByText(/last 30 min/)).toBeInTheDocument();
    expect(screen.getByText(/refuse \(429\)/)).toBeInTheDocument();
    await userEvent.click(within(row).getByRole("button", { name: "Clear" }));
    expect(await screen.findByText("No client flagged in the last 30 min.")).toBeInTheDocument();
    expect(calls.some((call) => call.method === "DELETE")).toBe(true);
  });

  it("says when the watch is off", async () => {
    const { fetchStub } = stubFetch({
      "GET /api/v1/query-attacks": () => [
        200,
        { enabled: false, policy: "flag", window: 1800, flag_at: 8, clients: [] },
      ],
    });
    vi.stubGlobal("fetch", fetchStub);
    renderPage(<QueryAttacks />);
    expect(await screen.findByText(/query watch is off/)).toBeInTheDocument();
  });

  it("formats windows in their largest whole unit", () => {
    expect([formatWindow(1800), formatWindow(7200), formatWindow(45)]).toEqual(["30 min", "2 h", "45 s"]);
  });
});

describe("VerdictCard and the query watch", () => {
  it("warns when the client's stream looks like a query attack, and only then", () => {
    const suspected = makeVerdict({ query_attack: { suspected: true, matches: 12, window: 1800 } });
    const { unmount } = renderPage(<VerdictCard verdict={suspected} />);
    expect(screen.getByRole("note", { name: "Query attack suspected" })).toHaveTextContent(
      "within the last 30 min it sent images that nearly duplicate many of its earlier ones (this one: 12)",
    );
    unmount();
    renderPage(
      <VerdictCard verdict={makeVerdict({ query_attack: { suspected: false, matches: 1, window: 1800 } })} />,
    );
    expect(screen.queryByRole("note", { name: "Query attack suspected" })).toBeNull();
  });
});
