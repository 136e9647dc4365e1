import { type FormEvent, useState } from "react";
import type { Schemas } from "../api/client";
import { useServices, useUser } from "../api/context";
import { keys } from "../api/queries/keys";
import { useApiMutation } from "../api/queries/mutation";
import { Card, ErrorBox } from "../components/ui";
import { fmtDate } from "../lib/format";

export function ProfilePage() {
  const { auth } = useServices();
  const update = useApiMutation(
    (api, body: Schemas["MeUpdate"]) => api.patch("/auth/me", { body }),
    () => [keys.me],
  );
  const me = useUser();
  const [name, setName] = useState(me.full_name);
  const [level, setLevel] = useState<Schemas["NotifyLevel"]>(me.notify_level);
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [saved, setSaved] = useState<string | null>(null);

  const save = (e: FormEvent, body: Schemas["MeUpdate"], message: string) => {
    e.preventDefault();
    setSaved(null);
    update.mutate(body, {
      onSuccess: (user) => {
        auth.updateUser(user);
        setSaved(message);
        setCurrent("");
        setNext("");
      },
    });
  };

  return (
    <div className="page" data-testid="page-profile">
      <h1>Your profile</h1>
      <div className="grid two">
        <Card title="Account">
          <form className="form-grid" onSubmit={(e) => save(e, { full_name: name, notify_level: level }, "profile saved")}>
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
            onSubmit={(e) => save(e, { current_password: current, new_password: next }, "password changed; your other sessions were logged out")}
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
      <ErrorBox error={update.error} />
      {saved ? (
        <p className="note" role="status">
          {saved}
        </p>
      ) : null}
    </div>
  );
}
