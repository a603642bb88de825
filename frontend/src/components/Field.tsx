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

/** A number input. An emptied one holds NaN (the form's check says so), shown as empty. */
export function NumberInput({
  value,
  onChange,
  required = true,
  ...rest
}: {
  value: number;
  onChange: (value: number) => void;
  min?: number;
  max?: number;
  step?: number;
  required?: boolean;
  id?: string;
  "aria-describedby"?: string;
}) {
  return (
    <input
      type="number"
      {...rest}
      required={required}
      value={Number.isNaN(value) ? "" : value}
      onChange={(event) => onChange(event.target.valueAsNumber)}
    />
  );
}
