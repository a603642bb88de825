import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ApiError, detailMessage, unwrap } from "../api/client";
import { ErrorMessage } from "./ErrorMessage";

describe("detailMessage", () => {
  it("keeps the API's detail string", () => {
    expect(detailMessage({ detail: "model 'x' does not exist" }, 404)).toBe("model 'x' does not exist");
  });

  it("flattens FastAPI's validation list to field: problem", () => {
    const body = {
      detail: [
        {
          loc: ["body", "build_adversarial_set", "eps", 0],
          msg: "Input should be greater than 0",
          type: "greater_than",
        },
        { loc: ["body", "build_adversarial_set", "model_id"], msg: "Field required", type: "missing" },
      ],
    };
    expect(detailMessage(body, 422)).toBe(
      "build_adversarial_set → eps → 0: Input should be greater than 0; build_adversarial_set → model_id: Field required",
    );
  });

  it("falls back to the status when there is no detail", () => {
    expect(detailMessage("", 502, "Bad Gateway")).toBe("HTTP 502 Bad Gateway");
    expect(detailMessage("<html>proxy error</html>", 502)).toBe("<html>proxy error</html>");
  });
});

describe("unwrap", () => {
  it("throws an ApiError carrying the status and the API's words", async () => {
    const answer = unwrap(
      Promise.resolve({
        error: { detail: "the job queue is unreachable (OperationalError); try again shortly" },
        response: new Response(null, { status: 503 }),
      }),
    );
    await expect(answer).rejects.toEqual(
      new ApiError(503, "the job queue is unreachable (OperationalError); try again shortly"),
    );
    await expect(answer).rejects.toHaveProperty("status", 503);
  });

  it("turns a network failure into a readable error", async () => {
    await expect(unwrap(Promise.reject(new TypeError("Failed to fetch")))).rejects.toThrow(
      "cannot reach the API: Failed to fetch",
    );
  });
});

describe("ErrorMessage", () => {
  it("shows an API error to the user as an alert, with its status", () => {
    render(
      <ErrorMessage
        title="Upload failed"
        error={new ApiError(413, "dataset zip is over the 500 MB limit")}
      />,
    );
    expect(screen.getByRole("alert")).toHaveTextContent(
      "Upload failed: dataset zip is over the 500 MB limit (HTTP 413)",
    );
  });

  it("renders nothing without an error", () => {
    const { container } = render(<ErrorMessage error={null} />);
    expect(container).toBeEmptyDOMElement();
  });
});
