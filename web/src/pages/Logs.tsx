import { LogsView } from "../components/LogsView";

export function LogsPage() {
  return (
    <div className="page" data-testid="page-logs">
      <header className="page-head">
        <h1>Logs</h1>
        <span className="muted">service, worker and agent lines; new ones appear live</span>
      </header>
      <div className="card">
        <LogsView />
      </div>
    </div>
  );
}
