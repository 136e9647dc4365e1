import {
  Chart as ChartJS,
  type ChartOptions,
  LinearScale,
  LineElement,
  type Plugin,
  PointElement,
  Tooltip,
} from "chart.js";
import { Scatter } from "react-chartjs-2";
import { parityLine, parityPoints } from "../../lib/accuracy";
import { type Pair, pairKey } from "./types";

ChartJS.register(LinearScale, PointElement, LineElement, Tooltip);

/** The y = x line, drawn under the points (not a dataset: never hovered or clicked). */
const identityLine: Plugin<"scatter"> = {
  id: "identityLine",
  beforeDatasetsDraw(chart) {
    const { ctx } = chart;
    const { x, y } = chart.scales;
    const lo = Math.max(x.min, y.min);
    const hi = Math.min(x.max, y.max);
    if (!(hi > lo)) return;
    ctx.save();
    ctx.strokeStyle = "#9ca3af";
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(x.getPixelForValue(lo), y.getPixelForValue(lo));
    ctx.lineTo(x.getPixelForValue(hi), y.getPixelForValue(hi));
    ctx.stroke();
    ctx.restore();
  },
};

/** Predicted (y) against DFT (x) on equal axes, with the y = x line; a click selects the
 * nearest point's pair. */
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
  const line = parityLine(pairs);
  const range = line.length ? { min: line[0].x, max: line[1].x } : {};
  const data = {
    datasets: [
      {
        label: "predictions",
        data: parityPoints(pairs),
        backgroundColor: highlighted.map((h) => (h ? "#dc2626" : "#2563eb")),
        pointRadius: highlighted.map((h) => (h ? 7 : 4)),
        pointHoverRadius: 8,
      },
    ],
  };
  const options: ChartOptions<"scatter"> = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    // hovering or clicking anywhere picks the nearest point (small points are hard to hit)
    interaction: { mode: "nearest", intersect: false, axis: "xy" },
    scales: {
      x: { type: "linear", ...range, title: { display: true, text: `DFT${suffix}` } },
      y: { type: "linear", ...range, title: { display: true, text: `predicted${suffix}` } },
    },
    plugins: {
      legend: { display: false },
      tooltip: {
        callbacks: {
          label: (item) => {
            const p = pairs[item.dataIndex];
            return `calculation ${p.calculation_id} ${p.label}: predicted ${p.predicted}, DFT ${p.dft}`;
          },
        },
      },
    },
    onClick: (_event, elements) => {
      if (elements.length) onSelect(pairs[elements[0].index]);
    },
  };
  return (
    <div className="chart" style={{ height: 360 }} data-testid="parity-plot">
      <Scatter data={data} options={options} plugins={[identityLine]} />
    </div>
  );
}
