import { cloneElement, useId, type ReactElement } from "react";

type Control = ReactElement<{ id?: string; "aria-describedby"?: string }>;

/** A form control with its visible label (and an optional hint) tied to it by id. */
export function Field({ label, hint, children }: { label: string; hint?: string; children: Control }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {cloneElement(children, { id, "aria-describedby": hint ? `${id}-hint` : undefined })}
      {hint ? (
        <span id={`${id}-hint`} className="muted small">
          {hint}
        </span>
      ) : null}
    </div>
  );
}
