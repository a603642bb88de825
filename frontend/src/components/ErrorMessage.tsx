import { ApiError } from "../api/client";

/** The message of anything thrown: the API's own words for an ApiError. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError)
    return error.status ? `${error.message} (HTTP ${error.status})` : error.message;
  if (error instanceof Error) return error.message;
  return typeof error === "string" ? error : JSON.stringify(error);
}

/** An error shown to the user, never swallowed; announced by screen readers. */
export function ErrorMessage({ error, title }: { error: unknown; title?: string }) {
  if (error === null || error === undefined || error === "") return null;
  return (
    <div className="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      <span className="error-text">{messageOf(error)}</span>
    </div>
  );
}
