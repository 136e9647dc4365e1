import { Link, useNavigate, useParams } from "react-router";
import { loadCatalogue } from "../api/catalogue";
import { useApi, useServices } from "../api/context";
import { useQuery } from "../api/hooks";
import { ReportView } from "../components/Report";
import { Card, Empty, ErrorBox, Loading, StateBadge } from "../components/ui";
import { fmtDate } from "../lib/format";

export function AnalysesPage() {
  const { id } = useParams();
  const api = useApi();
  const { caps } = useServices();
  const navigate = useNavigate();
  const calcId = id ? Number(id) : null;
  const catalogue = useQuery((signal) => loadCatalogue(api, caps, signal), []);
  const done = useQuery(
    (signal) => api.get("/calculations", { query: { state: "completed", limit: 50 }, signal }),
    [],
  );
  const calc = useQuery(
    (signal) => api.get("/calculations/{calc_id}", { path: { calc_id: calcId ?? 0 }, signal }),
    [calcId],
    { enabled: calcId !== null },
  );

  return (
    <div className="page" data-testid="page-analyses">
      <header className="page-head">
        <h1>Analyses</h1>
        <select
          aria-label="report of"
          value={calcId ?? ""}
          onChange={(e) => navigate(e.target.value ? `/analyses/${e.target.value}` : "/analyses")}
        >
          <option value="">report of a completed calculation…</option>
          {done.data?.items.map((c) => (
            <option key={c.id} value={c.id}>
              #{c.id} {c.name}
            </option>
          ))}
        </select>
      </header>
      {calcId !== null ? (
        <>
          <ErrorBox error={calc.error} />
          {calc.data ? (
            <>
              <p>
                <Link to={`/calculations/${calc.data.id}`}>
                  #{calc.data.id} {calc.data.name}
                </Link>{" "}
                <StateBadge state={calc.data.state} /> · {calc.data.kind} · {calc.data.steps.length} step(s) · finished{" "}
                {fmtDate(calc.data.finished_at)}
              </p>
              <ReportView calc={calc.data} />
            </>
          ) : (
            <Loading />
          )}
        </>
      ) : (
        <div className="grid two">
          <Card title="Completed calculations" testId="completed-calculations">
            <ErrorBox error={done.error} />
            {done.data && done.data.items.length === 0 ? <Empty>No completed calculation yet.</Empty> : null}
            <table>
              <tbody>
                {done.data?.items.map((c) => (
                  <tr key={c.id}>
                    <td>#{c.id}</td>
                    <td>
                      <Link to={`/analyses/${c.id}`}>{c.name}</Link>
                    </td>
                    <td>{c.kind}</td>
                    <td>{c.code}</td>
                    <td>{fmtDate(c.finished_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Card>
          <Card
            title="Catalogue"
            testId="catalogue"
            actions={catalogue.data ? <span className="muted">{catalogue.data.source}</span> : null}
          >
            <ErrorBox error={catalogue.error} />
            <table>
              <thead>
                <tr>
                  <th>analysis</th>
                  <th>codes</th>
                  <th>needs</th>
                  <th>what</th>
                </tr>
              </thead>
              <tbody>
                {catalogue.data?.items.map((a) => (
                  <tr key={a.name}>
                    <td>
                      <b>{a.title}</b>
                      <br />
                      <code>{a.name}</code>
                    </td>
                    <td>{a.codes.join(", ")}</td>
                    <td>{a.requires.join(", ") || "—"}</td>
                    <td className="small">{a.description}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Card>
        </div>
      )}
    </div>
  );
}
