import { CategoryScale, Chart as ChartJS, type ChartOptions, Legend, LinearScale, LineElement, PointElement, Tooltip } from "chart.js";
import { Line } from "react-chartjs-2";
import { withUnit } from "../../lib/accuracy";
import type { PeriodMetrics } from "./types";

ChartJS.register(CategoryScale, LinearScale, PointElement, LineElement, Tooltip, Legend);

/** MAE and RMSE per period: a small line chart and the numbers. */
export function ErrorTrend({ periods, unit, period }: { periods: PeriodMetrics[]; unit: string; period: string }) {
  const labels = periods.map((p) => p.start);
  const data = {
    labels,
    datasets: [
      { label: "MAE", data: periods.map((p) => p.mae), borderColor: "#2563eb", backgroundColor: "#2563eb" },
      { label: "RMSE", data: periods.map((p) => p.rmse), borderColor: "#dc2626", backgroundColor: "#dc2626" },
    ],
  };
  const options: ChartOptions<"line"> = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    scales: { y: { beginAtZero: true, title: { display: true, text: unit || "error" } } },
    plugins: { legend: { position: "bottom", labels: { boxWidth: 10 } } },
  };
  return (
    <div data-testid="error-trend">
      <div className="chart" style={{ height: 200 }}>
        <Line data={data} options={options} />
      </div>
      <table className="small">
        <thead>
          <tr>
            <th>{period} from</th>
            <th>pairs</th>
            <th>MAE</th>
            <th>RMSE</th>
          </tr>
        </thead>
        <tbody>
          {periods.map((p) => (
            <tr key={p.start} data-testid={`period-${p.start}`}>
              <td>{p.start}</td>
              <td>{p.n}</td>
              <td>{withUnit(p.mae, unit)}</td>
              <td>{withUnit(p.rmse, unit)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
