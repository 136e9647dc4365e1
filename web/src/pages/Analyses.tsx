import { Link, useNavigate, useParams } from "react-router";
import { useCatalogue } from "../api/queries/analyses";
import { useCalculation, useCalculations } from "../api/queries/calculations";
import { CalculationsTable } from "../components/CalculationsTable";
import { ReportView } from "../components/Report";
import { Card, ErrorBox, Loading, StateBadge } from "../components/ui";
import { fmtDate } from "../lib/format";

export function AnalysesPage() {
  const { id } = useParams();
  const navigate = useNavigate();
  const calcId = id ? Number(id) : null;
  const catalogue = useCatalogue();
  const done = useCalculations({ state: "completed", limit: 50 });
  const calc = useCalculation(calcId ?? 0, { enabled: calcId !== null });

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
            <CalculationsTable
              rows={done.data?.items}
              columns={["id", "name", "kind", "code", "finished"]}
              empty="No completed calculation yet."
              linkTo={(c) => `/analyses/${c.id}`}
            />
          </Card>
          <Card
            title="Catalogue"
            testId="catalogue"
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
                {catalogue.data?.map((a) => (
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
