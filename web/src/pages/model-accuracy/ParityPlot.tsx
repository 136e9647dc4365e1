import { Chart as ChartJS, type ChartOptions, LinearScale, LineElement, PointElement, Tooltip } from "chart.js";
import { Scatter } from "react-chartjs-2";
import { parityLine, parityPoints } from "../../lib/accuracy";
import { type Pair, pairKey } from "./types";

ChartJS.register(LinearScale, PointElement, LineElement, Tooltip);

/** Predicted (y) against DFT (x), with the y = x line; clicking a point selects its pair. */
export function ParityPlot({
  pairs,
  unit,
  selected,
  onSelect,
}: {
  pairs: Pair[];
  unit: string;
  selected: string | null;
  onSelect: (pair: Pair) => void;
}) {
  const suffix = unit ? ` (${unit})` : "";
  const highlighted = pairs.map((p) => pairKey(p) === selected);
  const data = {
    datasets: [
      {
        label: "predictions",
        data: parityPoints(pairs),
        backgroundColor: highlighted.map((h) => (h ? "#dc2626" : "#2563eb")),
        pointRadius: highlighted.map((h) => (h ? 7 : 4)),
        pointHoverRadius: 8,
      },
      {
        label: "y = x",
        data: parityLine(pairs),
        showLine: true,
        pointRadius: 0,
        borderColor: "#9ca3af",
        borderDash: [6, 4],
        borderWidth: 1.5,
      },
    ],
  };
  const options: ChartOptions<"scatter"> = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    scales: {
      x: { type: "linear", title: { display: true, text: `DFT${suffix}` } },
      y: { type: "linear", title: { display: true, text: `predicted${suffix}` } },
    },
    plugins: {
      legend: { display: false },
      tooltip: {
        filter: (item) => item.datasetIndex === 0,
        callbacks: {
          label: (item) => {
            const p = pairs[item.dataIndex];
            return `calculation ${p.calculation_id} ${p.label}: predicted ${p.predicted}, DFT ${p.dft}`;
          },
        },
      },
    },
    onClick: (_event, elements) => {
      const hit = elements.find((e) => e.datasetIndex === 0);
      if (hit) onSelect(pairs[hit.index]);
    },
  };
  return (
    <div className="chart" style={{ height: 360 }} data-testid="parity-plot">
      <Scatter data={data} options={options} />
    </div>
  );
}
