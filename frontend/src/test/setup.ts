import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";

afterEach(() => {
  cleanup();
  // Pickers remember their choice: each test starts afresh (node-environment tests have none).
  if (typeof window !== "undefined") window.localStorage.clear();
});
