import { type FormEvent, useState } from "react";
import type { Schemas } from "../api/client";
import { useApi, useServices, useUser } from "../api/context";
import { Card, ErrorBox } from "../components/ui";
import { fmtDate } from "../lib/format";

export function ProfilePage() {
  const api = useApi();
  const { auth } = useServices();
  const me = useUser();
  const [name, setName] = useState(me.full_name);
  const [level, setLevel] = useState<Schemas["NotifyLevel"]>(me.notify_level);
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const save = async (e: FormEvent, body: Schemas["MeUpdate"], message: string) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    try {
      auth.updateUser(await api.patch("/auth/me", { body }));
      setSaved(message);
      setCurrent("");
      setNext("");
    } catch (err) {
      setError(err);
    }
  };

  return (
    <div className="page" data-testid="page-profile">
      <h1>Your profile</h1>
      <div className="grid two">
        <Card title="Account">
          <form className="form-grid" onSubmit={(e) => void save(e, { full_name: name, notify_level: level }, "profile saved")}>
            <label>
              E-mail
              <input value={me.email} disabled />
            </label>
            <label>
              Role
              <input value={me.role} disabled />
            </label>
            <label>
              Name
              <input name="full_name" value={name} onChange={(e) => setName(e.target.value)} />
            </label>
            <label>
              E-mail me about
              <select name="notify_level" value={level} onChange={(e) => setLevel(e.target.value as Schemas["NotifyLevel"])}>
                <option value="error">failures only</option>
                <option value="info">every state change</option>
              </select>
            </label>
            <p className="muted wide">Member since {fmtDate(me.created_at)}.</p>
            <button type="submit">Save</button>
          </form>
        </Card>
        <Card title="Password">
          <form
            className="form-grid"
            onSubmit={(e) => void save(e, { current_password: current, new_password: next }, "password changed; your other sessions were logged out")}
          >
            <label>
              Current password
              <input type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />
            </label>
            <label>
              New password
              <input type="password" autoComplete="new-password" minLength={8} required value={next} onChange={(e) => setNext(e.target.value)} />
            </label>
            <button type="submit">Change password</button>
          </form>
        </Card>
      </div>
      <ErrorBox error={error} />
      {saved ? (
        <p className="note" role="status">
          {saved}
        </p>
      ) : null}
    </div>
  );
}
