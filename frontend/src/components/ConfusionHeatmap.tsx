import { useId } from "react";

// Sizes in SVG units; the drawing scales down with its frame on narrow screens.
const CELL = 64;
const CHAR = 7; // width of one character of a 12 px label, generously
const AXIS_TITLE = 22; // room for an axis title beside the labels
const TILT = 35; // degrees by which long column labels lean
const GAP = 8;

/** Count and share of its row, as a cell shows them. */
function cellText(count: number, rowTotal: number): [string, string] {
  return [String(count), rowTotal > 0 ? `${Math.round((100 * count) / rowTotal)} %` : "–"];
}

/** A confusion matrix as a labelled heat map: rows are what an image was, columns what it
 * was taken for; each cell gives its count and its share of the row, and is shaded by
 * that share, so a small class reads as clearly as a large one. */
export function ConfusionHeatmap({
  labels,
  matrix,
  title,
  rowsTitle,
  columnsTitle,
  caption,
}: {
  labels: string[];
  matrix: number[][];
  title: string;
  rowsTitle: string;
  columnsTitle: string;
  caption: string;
}) {
  const id = useId();
  if (labels.length === 0) return null;
  const longest = Math.max(...labels.map((label) => label.length)) * CHAR;
  const tilted = longest > CELL - GAP;
  // A tilted label of width w rises w·sin(TILT) above the cells.
  const columnLabels = tilted ? longest * Math.sin((TILT * Math.PI) / 180) + 14 : 18;
  const left = AXIS_TITLE + GAP + longest;
  const top = AXIS_TITLE + GAP + columnLabels;
  const size = labels.length * CELL;
  // A tilted last label, starting mid-cell, leans right by its width times cos(TILT).
  const right = Math.max(GAP, (tilted ? longest * Math.cos((TILT * Math.PI) / 180) - CELL / 2 : 0) + GAP);
  const width = left + size + right;
  const height = top + size + GAP;
  const totals = matrix.map((row) => row.reduce((sum, count) => sum + count, 0));
  return (
    <figure className="chart confusion">
      <svg
        role="img"
        aria-labelledby={`${id}-title`}
        viewBox={`0 0 ${width} ${height}`}
        width={width}
        height={height}
      >
        <title id={`${id}-title`}>{title}</title>
        <text x={left + size / 2} y={16} textAnchor="middle" className="axis-title">
          {columnsTitle}
        </text>
        <text x={-(top + size / 2)} y={16} transform="rotate(-90)" textAnchor="middle" className="axis-title">
          {rowsTitle}
        </text>
        {labels.map((label, j) => {
          const x = left + j * CELL + CELL / 2;
          const y = top - GAP;
          return tilted ? (
            <text
              key={`c${label}`}
              x={x}
              y={y}
              transform={`rotate(${-TILT} ${x} ${y})`}
              textAnchor="start"
              className="axis-label"
            >
              {label}
            </text>
          ) : (
            <text key={`c${label}`} x={x} y={y} textAnchor="middle" className="axis-label">
              {label}
            </text>
          );
        })}
        {labels.map((label, i) => (
          <g key={`r${label}`}>
            <text x={left - GAP} y={top + i * CELL + CELL / 2 + 4} textAnchor="end" className="axis-label">
              {label}
            </text>
            {labels.map((column, j) => {
              const count = matrix[i]?.[j] ?? 0;
              const total = totals[i] ?? 0;
              const share = total > 0 ? count / total : 0;
              const [countText, shareText] = cellText(count, total);
              const dark = share > 0.5;
              const x = left + j * CELL;
              const y = top + i * CELL;
              return (
                <g key={column} data-cell={`${label}|${column}`}>
                  <rect
                    x={x}
                    y={y}
                    width={CELL - 2}
                    height={CELL - 2}
                    fill={`rgba(31, 95, 191, ${(0.06 + 0.94 * share).toFixed(3)})`}
                    className={i === j ? "cell cell-diagonal" : "cell"}
                  >
                    <title>{`${rowsTitle} ${label}, ${columnsTitle} ${column}: ${countText} (${shareText} of ${label})`}</title>
                  </rect>
                  <text
                    x={x + CELL / 2 - 1}
                    y={y + CELL / 2}
                    textAnchor="middle"
                    className={dark ? "cell-label cell-label-dark" : "cell-label"}
                  >
                    {countText}
                  </text>
                  <text
                    x={x + CELL / 2 - 1}
                    y={y + CELL / 2 + 15}
                    textAnchor="middle"
                    className={dark ? "cell-share cell-label-dark" : "cell-share"}
                  >
                    {shareText}
                  </text>
                </g>
              );
            })}
          </g>
        ))}
      </svg>
      <figcaption>{caption}</figcaption>
    </figure>
  );
}
