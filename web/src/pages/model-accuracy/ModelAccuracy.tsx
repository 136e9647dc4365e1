import { useState } from "react";
import { Link, useParams } from "react-router";
import { useModel, useModelAccuracy } from "../../api/queries/models";
import { Card, Empty, ErrorBox, Loading } from "../../components/ui";
import { type AccuracyFilters, accuracyQuery } from "../../lib/accuracy";
import { ErrorTrend } from "./ErrorTrend";
import { Filters } from "./Filters";
import { MetricsSummary } from "./MetricsSummary";
import { PairsTable } from "./PairsTable";
import { ParityPlot } from "./ParityPlot";
import { type Pair, pairKey } from "./types";

const INITIAL: AccuracyFilters = { property: "energy_total_ev", code: "", period: "month" };

/**
 * A model's predictions against DFT (`GET /ml/models/{id}/accuracy`): the parity plot, MAE
 * and RMSE overall and per period, and the calculations behind each point. Clicking a point
 * (or a row) selects that pair: highlighted in both, with a link to its calculation.
 */
export function ModelAccuracyPage() {
  const id = Number(useParams().id);
  const [filters, setFilters] = useState<AccuracyFilters>(INITIAL);
  const [selected, setSelected] = useState<Pair | null>(null);
  const model = useModel(id);
  const accuracy = useModelAccuracy(id, accuracyQuery(filters));
  const data = accuracy.data;
  const change = (next: AccuracyFilters) => {
    setSelected(null);
    setFilters(next);
  };
  const selectedKey = selected ? pairKey(selected) : null;
  return (
    <div className="page" data-testid="page-model-accuracy">
      <header className="page-head">
        <h1>
          Predictions against DFT{model.data ? `: ${model.data.name} ${model.data.version}` : ""}
        </h1>
        <Link to="/models">All models</Link>
      </header>
      <ErrorBox error={model.error || accuracy.error} />
      {data ? <Filters value={filters} onChange={change} properties={data.properties} /> : null}
      {accuracy.isPending ? <Loading /> : null}
      {data ? (
        <>
          <Card title={`${data.property.name}${data.code ? ` (${data.code})` : ""}`}>
            <p className="muted small">{data.property.description}; error = DFT − predicted.</p>
            <MetricsSummary accuracy={data} />
          </Card>
          {data.pairs_total === 0 ? (
            <Empty>No prediction of this model has a DFT value to compare with yet.</Empty>
          ) : (
            <div className="grid">
              <Card title="Parity">
                <ParityPlot pairs={data.pairs} unit={data.property.unit} selected={selectedKey} onSelect={setSelected} />
                {selected ? (
                  <p data-testid="selected-pair">
                    Selected:{" "}
                    <Link to={`/calculations/${selected.calculation_id}`}>
                      calculation #{selected.calculation_id} {selected.calculation_name}
                    </Link>
                    , {selected.label}
                  </p>
                ) : (
                  <p className="muted small">Click a point to find its calculation.</p>
                )}
              </Card>
              <Card title={`Errors per ${data.period}`}>
                <ErrorTrend periods={data.periods} unit={data.property.unit} period={data.period} />
              </Card>
              <Card title="Calculations" className="wide">
                {data.pairs.length < data.pairs_total ? (
                  <p className="muted small">
                    The newest {data.pairs.length} of {data.pairs_total} pairs (the figures cover all of them).
                  </p>
                ) : null}
                <PairsTable pairs={data.pairs} unit={data.property.unit} selected={selectedKey} onSelect={setSelected} />
              </Card>
            </div>
          )}
        </>
      ) : null}
    </div>
  );
}

