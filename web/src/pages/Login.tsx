import { type FormEvent, useState } from "react";
import { Navigate, useSearchParams } from "react-router";
import { useServices, useSession } from "../api/context";

export function LoginPage() {
  const { auth } = useServices();
  const { user, restoring } = useSession();
  const [params] = useSearchParams();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const next = params.get("next");
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";

  if (!restoring && user) return <Navigate to={target} replace />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await auth.login(email.trim(), password);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login-page">
      <form className="card login" onSubmit={submit} aria-label="log in">
        <h1>
          <span className="logo">⬡</span> hpcgate
        </h1>
        <p className="muted">Calculations on HPC clusters, analyses and ML predictions.</p>
        <label>
          E-mail
          <input
            name="email"
            type="email"
            autoComplete="username"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        {error ? (
          <div className="error" role="alert">
            {error}
          </div>
        ) : null}
        <button type="submit" disabled={busy || restoring}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
    </div>
  );
}
