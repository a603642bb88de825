/** The attack-type confusion matrix as a heat map (rows: true attack, columns: named). */
export function ConfusionHeatmap({ names, matrix }: { names: string[]; matrix: number[][] }) {
  if (names.length === 0) return null;
  const peak = Math.max(1, ...matrix.flat());
  const cell = 56;
  const left = 70;
  const top = 56;
  const size = names.length * cell;
  return (
    <figure className="chart">
      <svg
        role="img"
        aria-labelledby="confusion-title"
        viewBox={`0 0 ${left + size + 10} ${top + size + 10}`}
        width={left + size + 10}
        height={top + size + 10}
      >
        <title id="confusion-title">
          Attack-type confusion: true attack (rows) vs named attack (columns)
        </title>
        <text x={left + size / 2} y={14} textAnchor="middle" className="axis-label">
          named attack →
        </text>
        {names.map((name, j) => (
          <text
            key={`c${name}`}
            x={left + j * cell + cell / 2}
            y={top - 10}
            textAnchor="middle"
            className="axis-label"
          >
            {name}
          </text>
        ))}
        {names.map((name, i) => (
          <g key={`r${name}`}>
            <text x={left - 8} y={top + i * cell + cell / 2 + 4} textAnchor="end" className="axis-label">
              {name}
            </text>
            {names.map((column, j) => {
              const count = matrix[i]?.[j] ?? 0;
              const strength = count / peak;
              return (
                <g key={column}>
                  <rect
                    x={left + j * cell}
                    y={top + i * cell}
                    width={cell - 2}
                    height={cell - 2}
                    fill={`rgba(31, 95, 191, ${0.08 + 0.92 * strength})`}
                  >
                    <title>{`true ${name}, named ${column}: ${count}`}</title>
                  </rect>
                  <text
                    x={left + j * cell + cell / 2 - 1}
                    y={top + i * cell + cell / 2 + 4}
                    textAnchor="middle"
                    className={strength > 0.5 ? "cell-label cell-label-dark" : "cell-label"}
                  >
                    {count}
                  </text>
                </g>
              );
            })}
          </g>
        ))}
      </svg>
      <figcaption>
        Successful attacks on the test split, by true attack (rows) and the attack the guard named (columns).
      </figcaption>
    </figure>
  );
}
