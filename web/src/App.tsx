import { type ReactNode, useState } from "react";
import { BrowserRouter, Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import { useServices, useSession } from "./api/context";
import { type Permissions, useMe, usePermissions } from "./api/permissions";
import { ErrorBox } from "./components/ui";
import { AnalysesPage } from "./pages/Analyses";
import { CalculationDetailPage } from "./pages/CalculationDetail";
import { CalculationListPage } from "./pages/CalculationList";
import { CalculationNewPage } from "./pages/calculation-new/CalculationNewPage";
import { ClustersPage } from "./pages/Clusters";
import { DashboardPage } from "./pages/Dashboard";
import { LoginPage } from "./pages/Login";
import { LogsPage } from "./pages/Logs";
import { ModelsPage } from "./pages/Models";
import { ModelAccuracyPage } from "./pages/model-accuracy/ModelAccuracy";
import { MoleculesPage } from "./pages/Molecules";
import { ProfilePage } from "./pages/Profile";
import { UsagePage } from "./pages/Usage";
import { UsersPage } from "./pages/Users";

/** The sections, each shown to whoever holds the permission the server lists for it. */
const NAV: { to: string; label: string; needs?: string; own?: boolean }[] = [
  { to: "/", label: "Dashboard" },
  { to: "/calculations", label: "Calculations", needs: "calculation.read" },
  { to: "/analyses", label: "Analyses", needs: "calculation.read" },
  { to: "/molecules", label: "Molecules", needs: "calculation.read" },
  { to: "/models", label: "Models", needs: "ml_model.read" },
  { to: "/clusters", label: "Clusters", needs: "cluster.read" },
  { to: "/logs", label: "Logs", needs: "log.read" },
  { to: "/usage", label: "Usage", needs: "usage.read", own: true }, // one's own, at least
  { to: "/users", label: "Users", needs: "user.read" },
];

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
  const me = useMe();
  const location = useLocation();
  if (restoring) return <div className="boot">Loading hpcgate…</div>;
  if (!user) {
    const next = location.pathname + location.search;
    return <Navigate to={`/login${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`} replace />;
  }
  // Navigation and buttons follow the server's permissions: wait for them.
  if (!me.data) {
    return me.error ? <ErrorBox error={me.error} /> : <div className="boot">Loading hpcgate…</div>;
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
        <Route path="models/:id/accuracy" element={<ModelAccuracyPage />} />
        <Route path="clusters" element={<ClustersPage />} />
        <Route path="logs" element={<LogsPage />} />
        <Route path="usage" element={<UsagePage />} />
        <Route path="users" element={<Gate needs="user.read"><UsersPage /></Gate>} />
        <Route path="profile" element={<ProfilePage />} />
        <Route path="*" element={<NotFound />} />
      </Routes>
    </Shell>
  );
}

function Gate({ needs, children }: { needs: string; children: ReactNode }) {
  const can = usePermissions();
  if (!can.may(needs)) {
    return (
      <div className="card" data-testid="forbidden">
        <h1>Not available</h1>
        <p>Your account may not open this section.</p>
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

function navFor(can: Permissions, userId: number | undefined) {
  const mine = userId === undefined ? undefined : { owner_id: userId };
  return NAV.filter((item) => !item.needs || can.may(item.needs, item.own ? mine : undefined));
}

function Shell({ children }: { children: ReactNode }) {
  const { auth } = useServices();
  const { user } = useSession();
  const can = usePermissions();
  const navigate = useNavigate();
  const [busy, setBusy] = useState(false);
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="sections">
        <div className="brand">
          <span className="logo">⬡</span> hpcgate
        </div>
        <ul data-testid="nav">
          {navFor(can, user?.id).map((item) => (
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
