/**
 * Charts on Chart.js (react-chartjs-2): resource time series and analysis graphs.
 * Time axes are linear axes over epoch milliseconds with formatted ticks, which avoids a
 * date-adapter dependency.
 */
import {
  CategoryScale,
  Chart as ChartJS,
  type ChartDataset,
  type ChartOptions,
  Filler,
  Legend,
  LinearScale,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
} from "chart.js";
import { Line, Scatter } from "react-chartjs-2";
import { fmtTime } from "../lib/format";

const MINUTE = 60_000;
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440].map((m) => m * MINUTE);

/** A round tick interval giving at most 6 ticks over the window. */
function niceStep(spanMs: number): number {
  return STEPS.find((s) => spanMs / s <= 6) ?? 1440 * MINUTE * Math.ceil(spanMs / (6 * 1440 * MINUTE));
}

/** Time of day for short windows, day and time beyond 36 hours. */
function fmtTick(ms: number, spanMs: number): string {
  if (spanMs <= 36 * 3600_000) return fmtTime(ms);
  return new Date(ms).toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
}

ChartJS.register(
  CategoryScale,
  LinearScale,
  LogarithmicScale,
  PointElement,
  LineElement,
  Tooltip,
  Legend,
  Filler,
);

export const PALETTE = [
  "#2563eb",
  "#dc2626",
  "#16a34a",
  "#9333ea",
  "#ea580c",
  "#0891b2",
  "#ca8a04",
  "#db2777",
  "#4b5563",
  "#65a30d",
];

export interface TimePoint {
  t: number;
  y: number | null;
}

export interface TimeSeries {
  label: string;
  points: TimePoint[];
  color?: string;
  fill?: boolean;
}

export function TimeSeriesChart({
  series,
  yLabel,
  height = 180,
  yMin,
  yMax,
  xMin,
  xMax,
  testId,
}: {
  series: TimeSeries[];
  yLabel: string;
  height?: number;
  yMin?: number;
  yMax?: number;
  /** the time window (epoch ms), so a sparse series sits where it belongs */
  xMin?: number;
  xMax?: number;
  testId?: string;
}) {
  const datasets: ChartDataset<"line", { x: number; y: number | null }[]>[] = series.map(
    (s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length];
      return {
        label: s.label,
        data: s.points.map((p) => ({ x: p.t, y: p.y })),
        borderColor: color,
        backgroundColor: `${color}33`,
        fill: s.fill ?? false,
        pointRadius: s.points.length > 40 ? 0 : 2,
        borderWidth: 1.5,
        spanGaps: true,
        tension: 0.2,
      };
    },
  );
  const times = series.flatMap((s) => s.points.map((p) => p.t));
  const span = (xMax ?? Math.max(0, ...times)) - (xMin ?? Math.min(Date.now(), ...times));
  const options: ChartOptions<"line"> = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "nearest", intersect: false, axis: "x" },
    parsing: false,
    scales: {
      x: {
        type: "linear",
        min: xMin,
        max: xMax,
        ticks: {
          callback: (v) => fmtTick(Number(v), span),
          stepSize: niceStep(span),
          includeBounds: false,
          maxTicksLimit: 8,
        },
      },
      y: { title: { display: true, text: yLabel }, min: yMin, max: yMax, beginAtZero: true },
    },
    plugins: {
      legend: { display: series.length > 1, position: "bottom", labels: { boxWidth: 10 } },
      tooltip: {
        callbacks: { title: (items) => (items[0] ? new Date(items[0].parsed.x ?? 0).toLocaleString() : "") },
      },
    },
  };
  const empty = series.every((s) => s.points.every((p) => p.y === null));
  return (
    <div className="chart" style={{ height }} data-testid={testId}>
      {empty ? <div className="chart-empty">no samples in this window</div> : null}
      <Line data={{ datasets }} options={options} />
    </div>
  );
}

export interface XYSeries {
  label: string;
  x: (number | null)[];
  y: (number | null)[];
  kind?: string;
  /** optional look (default: the palette colour, round points) */
  color?: string;
  pointStyle?: "circle" | "cross" | "crossRot" | "rect" | "triangle";
  pointRadius?: number;
  /** points drawn as outlines only */
  hollow?: boolean;
}

/** One analysis graph: several series on shared axes (the `graph` key of AnalysisOutput). */
export function XYChart({
  series,
  xLabel,
  yLabel,
  yScale = "linear",
  height = 260,
  xTicks,
  yTickFormat,
  testId,
}: {
  series: XYSeries[];
  xLabel: string;
  yLabel: string;
  yScale?: string;
  height?: number;
  xTicks?: { values: number[]; labels: string[] };
  /** linear y axis: how a tick value is printed (e.g. currents with an SI prefix) */
  yTickFormat?: (value: number) => string;
  testId?: string;
}) {
  const labelled = series.filter((s) => s.label).length;
  const datasets = series.map((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const points = s.x
      .map((x, j) => ({ x, y: s.y[j] ?? null }))
      .filter((p): p is { x: number; y: number | null } => p.x !== null);
    const scatter = s.kind === "scatter";
    return {
      label: s.label || `series ${i + 1}`,
      data: points,
      borderColor: color,
      backgroundColor: s.hollow ? "transparent" : color,
      showLine: !scatter,
      stepped: s.kind === "step" ? ("before" as const) : false,
      pointRadius: s.pointRadius ?? (scatter || s.kind === "linepoints" || points.length < 30 ? 3 : 0),
      pointStyle: s.pointStyle ?? ("circle" as const),
      borderWidth: s.pointStyle === "cross" || s.pointStyle === "crossRot" ? 2.5 : 1.5,
    };
  });
  const tickMap = xTicks ? new Map(xTicks.values.map((v, i) => [v, xTicks.labels[i]])) : null;
  const options: ChartOptions<"scatter"> = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    scales: {
      x: {
        type: "linear",
        title: { display: true, text: xLabel },
        ticks: tickMap ? { callback: (v) => tickMap.get(Number(v)) ?? "" } : {},
        afterBuildTicks: tickMap
          ? (axis) => {
              axis.ticks = xTicks!.values.map((value) => ({ value }));
            }
          : undefined,
      },
      y: {
        type: yScale === "log" ? "logarithmic" : "linear",
        title: { display: true, text: yLabel },
        ticks:
          yScale === "log"
            ? {
                // only the powers of ten, as 1e-3
                callback: (v) => {
                  const e = Math.log10(Number(v));
                  return Math.abs(e - Math.round(e)) < 1e-9 ? Number(v).toExponential(0) : "";
                },
              }
            : yTickFormat
              ? { callback: (v) => yTickFormat(Number(v)) }
              : {},
        // room above and below the data, so points on the axis' ends are not clipped
        grace: yTickFormat ? "8%" : undefined,
      },
    },
    plugins: {
      legend: {
        display: labelled > 0 && labelled <= 12,
        position: "bottom",
        labels: { boxWidth: 10, filter: (item) => !/^series \d+$/.test(item.text) },
      },
    },
  };
  return (
    <div className="chart" style={{ height }} data-testid={testId}>
      <Scatter data={{ datasets }} options={options} />
    </div>
  );
}

/** For completeness in places that want a simple line over categories (e.g. steps). */
export { Line };
