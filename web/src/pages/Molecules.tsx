import { useState } from "react";
import { Link } from "react-router";
import { useApi, useServices } from "../api/context";
import { useQuery } from "../api/hooks";
import { Card, Empty, ErrorBox, StateBadge } from "../components/ui";
import { fmtDate } from "../lib/format";

/**
 * Molecules need the API's molecule routes (list, structure). Until the server offers
 * `GET /molecules`, this section says so and still finds calculations by molecule id,
 * which the calculations API filters on already.
 */
export function MoleculesPage() {
  const { caps } = useServices();
  return (
    <div className="page" data-testid="page-molecules">
      <header className="page-head">
        <h1>Molecules</h1>
      </header>
      {caps.molecules ? null : (
        <Card title="Not available on this server" testId="molecules-placeholder">
          <p>
            This hpcgate API has no molecule endpoints yet (<code>GET /molecules</code>), so there is no molecule
            list, 3D structure view or side-by-side comparison to show. They appear here once the server offers
            them; nothing needs rebuilding.
          </p>
        </Card>
      )}
      <ByMolecule />
    </div>
  );
}

function ByMolecule() {
  const api = useApi();
  const [id, setId] = useState("");
  const n = Number(id);
  const calcs = useQuery(
    (signal) => api.get("/calculations", { query: { molecule_id: n, limit: 50 }, signal }),
    [n],
    { enabled: Number.isInteger(n) && n > 0 },
  );
  return (
    <Card title="Calculations of a molecule">
      <label className="inline">
        molecule id{" "}
        <input type="number" min={1} className="narrow" value={id} onChange={(e) => setId(e.target.value)} />
      </label>
      <ErrorBox error={calcs.error} />
      {n > 0 && calcs.data ? (
        calcs.data.items.length ? (
          <table>
            <tbody>
              {calcs.data.items.map((c) => (
                <tr key={c.id}>
                  <td>#{c.id}</td>
                  <td>
                    <Link to={`/calculations/${c.id}`}>{c.name}</Link>
                  </td>
                  <td>
                    <StateBadge state={c.state} />
                  </td>
                  <td>{fmtDate(c.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Empty>No calculation of molecule {n}.</Empty>
        )
      ) : null}
    </Card>
  );
}
