import { useId, useRef, useState, type DragEvent } from "react";

/** A file input that also takes files dropped on it; the input stays keyboard-reachable. */
export function FileDrop({
  label,
  accept,
  multiple = false,
  hint,
  onFiles,
  disabled = false,
}: {
  label: string;
  accept?: string;
  multiple?: boolean;
  hint?: string;
  onFiles: (files: File[]) => void;
  disabled?: boolean;
}) {
  const id = useId();
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const take = (list: FileList | null) => {
    const files = list ? Array.from(list) : [];
    if (files.length > 0) onFiles(multiple ? files : files.slice(0, 1));
  };
  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setOver(false);
    if (disabled) return;
    // Show the dropped file in the input too, as if it had been chosen.
    if (input.current && event.dataTransfer.files.length > 0) input.current.files = event.dataTransfer.files;
    take(event.dataTransfer.files);
  };
  return (
    <div
      className={`drop${over ? " drop-over" : ""}`}
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <label htmlFor={id}>{label}</label>
      <input
        ref={input}
        id={id}
        type="file"
        accept={accept}
        multiple={multiple}
        disabled={disabled}
        aria-describedby={hint ? `${id}-hint` : undefined}
        onChange={(event) => take(event.target.files)}
      />
      {hint ? (
        <p id={`${id}-hint`} className="muted small">
          {hint}
        </p>
      ) : null}
    </div>
  );
}
