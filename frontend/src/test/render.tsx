import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import { MemoryRouter } from "react-router";
import { expect, vi } from "vitest";

/** Render a page as the app does: a fresh query cache (no retries) and a router. */
export function renderPage(page: ReactElement) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter>{page}</MemoryRouter>
    </QueryClientProvider>,
  );
}

/** The JSON body of the first ``method`` (POST) request among the stubbed fetch calls, once it is made. */
export async function postedJson(calls: Request[], method = "POST"): Promise<Record<string, unknown>> {
  await vi.waitFor(() => expect(calls.some((request) => request.method === method)).toBe(true));
  return (await calls
    .find((request) => request.method === method)!
    .clone()
    .json()) as Record<string, unknown>;
}
