/** Log lines with filters: the newest page, then a live SSE tail; admins delete lines. */
import { useEffect, useMemo, useState } from "react";
import { Link } from "react-router";
import type { Schemas } from "../api/client";
import { buildQuery } from "../api/client";
import { useApi } from "../api/context";
import { usePermissions } from "../api/permissions";
import { useDeleteLogs, useLogPages } from "../api/queries/logs";
import { openEventStream } from "../api/sse";
import { fmtDate } from "../lib/format";
import { useDebounced } from "../lib/useDebounced";
import { ErrorBox } from "./ui";

type Line = Schemas["LogLineOut"];
type Level = NonNullable<Schemas["AgentLogLine"]["level"]>;
const LEVELS: Level[] = ["debug", "info", "warning", "error", "critical"];
const KEEP = 2000;

export interface LogFilter {
  level: Level | "";
  source: string;
  calculation_id: string;
  cluster_id: string;
}

function query(f: LogFilter) {
  return {
    level: f.level || undefined,
    source: f.source.trim() || undefined,
    calculation_id: f.calculation_id ? Number(f.calculation_id) : undefined,
    cluster_id: f.cluster_id ? Number(f.cluster_id) : undefined,
  };
}

export function LogsView({
  fixed,
  compact,
}: {
  /** filters imposed by the page (e.g. a calculation's id), not editable */
  fixed?: Partial<LogFilter>;
  compact?: boolean;
}) {
  const api = useApi();
  const can = usePermissions();
  const [filter, setFilter] = useState<LogFilter>({
    level: "",
    source: "",
    calculation_id: "",
    cluster_id: "",
    ...fixed,
  });
  const settled = useDebounced(filter, 400);
  const [tail, setTail] = useState<Line[]>([]);
  const [live, setLive] = useState(true);
  const [status, setStatus] = useState("connecting");
  const [deleted, setDeleted] = useState<string | null>(null);
  const q = query(settled);
  const pages = useLogPages({ ...q, limit: 100 });
  const removal = useDeleteLogs();
  const first = pages.data?.pages[0];
  const loaded = useMemo(() => pages.data?.pages.flatMap((p) => p.items) ?? [], [pages.data]);
  const lines = useMemo(() => {
    const seen = new Set(loaded.map((l) => l.id));
    return [...tail.filter((l) => !seen.has(l.id)), ...loaded].slice(0, KEEP * 2);
  }, [tail, loaded]);

  // The live tail, from the newest line of the first page (again whenever that page is re-read).
  useEffect(() => {
    setTail([]);
    if (!live || !first) {
      setStatus(live ? "connecting" : "paused");
      return;
    }
    let newest = first.items[0]?.id ?? 0;
    const url = "/logs/stream" + buildQuery({ ...q, poll_s: 1, after_id: newest });
    const handle = openEventStream(api, url, {
      onEvent: (ev) => {
        if (ev.event !== "log") return;
        const line = JSON.parse(ev.data) as Line;
        newest = Math.max(newest, line.id);
        setTail((cur) => (cur.some((l) => l.id === line.id) ? cur : [line, ...cur].slice(0, KEEP)));
      },
      onStatus: (s) => setStatus(s),
    });
    return () => handle.close();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, live, first]);

  const remove = () => {
    const filtered = Object.values(q).some((v) => v !== undefined);
    const what = filtered ? "every log line matching these filters" : "EVERY log line";
    if (!window.confirm(`Delete ${what}? This cannot be undone.`)) return;
    setDeleted(null);
    removal.mutate(
      { ...q, before: new Date().toISOString(), all: filtered ? undefined : true },
      { onSuccess: (r) => setDeleted(`${r.deleted} line(s) deleted`) },
    );
  };

  const set = (changes: Partial<LogFilter>) => setFilter((f) => ({ ...f, ...changes }));

  return (
    <div className="logs" data-testid="logs-view">
      <div className="filters">
        <select aria-label="level" value={filter.level} onChange={(e) => set({ level: e.target.value as Level | "" })}>
          <option value="">all levels</option>
          {LEVELS.map((l) => (
            <option key={l} value={l}>
              {l} and above
            </option>
          ))}
        </select>
        <input
          aria-label="source"
          placeholder='source, e.g. engine or agent:*'
          value={filter.source}
          onChange={(e) => set({ source: e.target.value })}
        />
        {fixed?.calculation_id === undefined ? (
          <input
            aria-label="calculation"
            type="number"
            min={1}
            placeholder="calculation #"
            value={filter.calculation_id}
            onChange={(e) => set({ calculation_id: e.target.value })}
          />
        ) : null}
        {!compact ? (
          <input
            aria-label="cluster"
            type="number"
            min={1}
            placeholder="cluster id"
            value={filter.cluster_id}
            onChange={(e) => set({ cluster_id: e.target.value })}
          />
        ) : null}
        <label className="inline">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> live
        </label>
        <span className={`live-status ${status}`} data-testid="live-status">
          {live ? status : "paused"}
        </span>
        {can.may("log.delete") && !compact ? (
          <button type="button" className="danger" onClick={remove} data-testid="delete-logs">
            Delete matching…
          </button>
        ) : null}
      </div>
      <ErrorBox error={pages.error ?? removal.error} />
      {deleted ? <p className="note">{deleted}</p> : null}
      <div className="scroll log-lines">
        <table>
          <thead>
            <tr>
              <th>time</th>
              <th>level</th>
              <th>source</th>
              <th>message</th>
            </tr>
          </thead>
          <tbody data-testid="log-lines">
            {lines.map((l) => (
              <tr key={l.id} className={`level-${l.level}`} data-log-id={l.id}>
                <td className="nowrap">{fmtDate(l.ts)}</td>
                <td>
                  <span className={`lvl lvl-${l.level}`}>{l.level}</span>
                </td>
                <td className="nowrap">{l.source}</td>
                <td className="msg">
                  {l.message}
                  {l.calculation_id && fixed?.calculation_id === undefined ? (
                    <Link className="muted" to={`/calculations/${l.calculation_id}`}>
                      {" "}
                      #{l.calculation_id}
                    </Link>
                  ) : null}
                </td>
              </tr>
            ))}
            {lines.length === 0 ? (
              <tr>
                <td colSpan={4} className="muted">
                  No log line matches.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      {pages.hasNextPage ? (
        <button type="button" className="secondary" disabled={pages.isFetchingNextPage} onClick={() => void pages.fetchNextPage()}>
          Load older lines
        </button>
      ) : null}
    </div>
  );
}
