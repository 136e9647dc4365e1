import { type ReactNode, useState } from "react";
import { BrowserRouter, Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import { useServices, useSession } from "./api/context";
import { atLeast, navFor, type Role } from "./lib/roles";
import { AnalysesPage } from "./pages/Analyses";
import { CalculationDetailPage } from "./pages/CalculationDetail";
import { CalculationListPage } from "./pages/CalculationList";
import { CalculationNewPage } from "./pages/CalculationNew";
import { ClustersPage } from "./pages/Clusters";
import { DashboardPage } from "./pages/Dashboard";
import { LoginPage } from "./pages/Login";
import { LogsPage } from "./pages/Logs";
import { ModelsPage } from "./pages/Models";
import { MoleculesPage } from "./pages/Molecules";
import { ProfilePage } from "./pages/Profile";
import { UsersPage } from "./pages/Users";

export function App() {
  return (
    <BrowserRouter>
      <Routes>
        <Route path="/login" element={<LoginPage />} />
        <Route path="/*" element={<Authenticated />} />
      </Routes>
    </BrowserRouter>
  );
}

function Authenticated() {
  const { user, restoring } = useSession();
  const location = useLocation();
  if (restoring) return <div className="boot">Loading hpcgate…</div>;
  if (!user) {
    const next = location.pathname + location.search;
    return <Navigate to={`/login${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`} replace />;
  }
  return (
    <Shell>
      <Routes>
        <Route index element={<DashboardPage />} />
        <Route path="calculations" element={<CalculationListPage />} />
        <Route path="calculations/new" element={<CalculationNewPage />} />
        <Route path="calculations/:id" element={<CalculationDetailPage />} />
        <Route path="analyses" element={<AnalysesPage />} />
        <Route path="analyses/:id" element={<AnalysesPage />} />
        <Route path="molecules" element={<MoleculesPage />} />
        <Route path="molecules/:id" element={<MoleculesPage />} />
        <Route path="models" element={<ModelsPage />} />
        <Route path="clusters" element={<ClustersPage />} />
        <Route path="logs" element={<LogsPage />} />
        <Route path="users" element={<RoleGate minimum="moderator"><UsersPage /></RoleGate>} />
        <Route path="profile" element={<ProfilePage />} />
        <Route path="*" element={<NotFound />} />
      </Routes>
    </Shell>
  );
}

function RoleGate({ minimum, children }: { minimum: Role; children: ReactNode }) {
  const { user } = useSession();
  if (!atLeast(user?.role, minimum)) {
    return (
      <div className="card" data-testid="forbidden">
        <h1>Not available</h1>
        <p>This section needs the {minimum} role.</p>
      </div>
    );
  }
  return <>{children}</>;
}

function NotFound() {
  return (
    <div className="card">
      <h1>Page not found</h1>
      <p>
        <NavLink to="/">Back to the dashboard</NavLink>
      </p>
    </div>
  );
}

function Shell({ children }: { children: ReactNode }) {
  const { auth, caps } = useServices();
  const { user } = useSession();
  const navigate = useNavigate();
  const [busy, setBusy] = useState(false);
  const items = navFor(user?.role, { models: caps.modelsPath !== null });
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="sections">
        <div className="brand">
          <span className="logo">⬡</span> hpcgate
        </div>
        <ul data-testid="nav">
          {items.map((item) => (
            <li key={item.to}>
              <NavLink to={item.to} end={item.to === "/"} data-nav={item.label}>
                {item.label}
              </NavLink>
            </li>
          ))}
        </ul>
        <div className="whoami">
          <NavLink to="/profile" data-testid="profile-link">
            {user?.full_name || user?.email}
          </NavLink>
          <span className="role" data-testid="role">
            {user?.role}
          </span>
          <button
            type="button"
            className="secondary"
            disabled={busy}
            data-testid="logout"
            onClick={() => {
              setBusy(true);
              void auth.logout().finally(() => {
                setBusy(false);
                navigate("/login");
              });
            }}
          >
            Log out
          </button>
        </div>
      </nav>
      <main className="content">{children}</main>
    </div>
  );
}
