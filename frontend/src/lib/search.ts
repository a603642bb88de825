import { useSearchParams } from "react-router";

/** The page's query string, and a setter of some of its keys (undefined or "" removes
 * one) that replaces the history entry, so that Back leaves the page. */
export function useSearchState(): [URLSearchParams, (changes: Record<string, string | undefined>) => void] {
  const [search, setSearch] = useSearchParams();
  const update = (changes: Record<string, string | undefined>) =>
    setSearch(
      (previous) => {
        const next = new URLSearchParams(previous);
        for (const [key, value] of Object.entries(changes)) {
          if (value) next.set(key, value);
          else next.delete(key);
        }
        return next;
      },
      { replace: true },
    );
  return [search, update];
}
