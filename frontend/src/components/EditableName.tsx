import { useState, type FormEvent } from "react";
import { useRename, type NamedKind } from "../api/queries";
import { ErrorMessage } from "./ErrorMessage";

/** A record's name with a Rename button; renaming edits it in place (Enter saves, Escape
 * cancels). The id stays one click away: "id" shows it, selectable. */
export function EditableName({ kind, id, name }: { kind: NamedKind; id: string; name: string }) {
  const rename = useRename(kind);
  const [draft, setDraft] = useState<string | null>(null);
  const [showId, setShowId] = useState(false);
  const save = (event: FormEvent) => {
    event.preventDefault();
    const wanted = (draft ?? "").trim();
    if (!wanted || wanted === name) return setDraft(null);
    rename.mutate({ id, name: wanted }, { onSuccess: () => setDraft(null) });
  };
  if (draft !== null)
    return (
      <form className="rename" onSubmit={save} aria-label={`Rename ${name}`}>
        <input
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
          onKeyDown={(event) => event.key === "Escape" && setDraft(null)}
          maxLength={200}
          aria-label={`New name for ${name}`}
          autoFocus
          required
        />
        <button type="submit" disabled={rename.isPending}>
          Save
        </button>
        <button type="button" className="secondary" onClick={() => setDraft(null)}>
          Cancel
        </button>
        <ErrorMessage title="Rename failed" error={rename.error} />
      </form>
    );
  return (
    <span className="record-name">
      <span className="name">{name}</span>{" "}
      <button
        type="button"
        className="link-button"
        onClick={() => setDraft(name)}
        aria-label={`Rename ${name}`}
      >
        rename
      </button>{" "}
      <button
        type="button"
        className="link-button"
        onClick={() => setShowId(!showId)}
        aria-expanded={showId}
        aria-label={`Id of ${name}`}
      >
        id
      </button>
      {showId ? <code className="record-id">{id}</code> : null}
    </span>
  );
}
