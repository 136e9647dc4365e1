import { type FormEvent, useState } from "react";
import type { Schemas } from "../api/client";
import { useSession } from "../api/context";
import { type Permissions, usePermissions } from "../api/permissions";
import { type UserChange, useCreateUser, useUserChange, useUsers } from "../api/queries/users";
import { Card, ErrorBox, Pager, StateBadge } from "../components/ui";
import { fmtDate } from "../lib/format";
import { useDebounced } from "../lib/useDebounced";

type User = Schemas["UserOut"];
type Role = Schemas["Role"];
const LIMIT = 50;

export function UsersPage() {
  const can = usePermissions();
  const [search, setSearch] = useState("");
  const q = useDebounced(search, 300);
  const [role, setRole] = useState<Role | "">("");
  const [blocked, setBlocked] = useState<"" | "true" | "false">("");
  const [offset, setOffset] = useState(0);
  const [creating, setCreating] = useState(false);
  const users = useUsers({
    q: q || undefined,
    role: role || undefined,
    blocked: blocked === "" ? undefined : blocked === "true",
    limit: LIMIT,
    offset,
  });
  return (
    <div className="page" data-testid="page-users">
      <header className="page-head">
        <h1>Users</h1>
        {can.may("user.administer") ? (
          <button type="button" data-testid="add-user" onClick={() => setCreating((c) => !c)}>
            {creating ? "Close" : "Add user"}
          </button>
        ) : null}
      </header>
      {creating ? (
        <CreateUser onDone={() => setCreating(false)} />
      ) : null}
      <div className="filters card">
        <input type="search" aria-label="search users" placeholder="e-mail or name" value={search} onChange={(e) => { setSearch(e.target.value); setOffset(0); }} />
        <select aria-label="role filter" value={role} onChange={(e) => { setRole(e.target.value as Role | ""); setOffset(0); }}>
          <option value="">any role</option>
          <option value="user">user</option>
          <option value="moderator">moderator</option>
          <option value="admin">admin</option>
        </select>
        <select aria-label="blocked filter" value={blocked} onChange={(e) => { setBlocked(e.target.value as "" | "true" | "false"); setOffset(0); }}>
          <option value="">blocked or not</option>
          <option value="true">blocked</option>
          <option value="false">active</option>
        </select>
      </div>
      <ErrorBox error={users.error} />
      <div className="card">
        <table data-testid="users-table">
          <thead>
            <tr>
              <th>e-mail</th>
              <th>name</th>
              <th>role</th>
              <th>mail</th>
              <th>state</th>
              <th>since</th>
              <th>actions</th>
            </tr>
          </thead>
          <tbody>
            {users.data?.items.map((u) => (
              <UserRow key={u.id} user={u} can={can} />
            ))}
          </tbody>
        </table>
        {users.data ? <Pager total={users.data.total} limit={LIMIT} offset={offset} onChange={setOffset} /> : null}
      </div>
    </div>
  );
}

function UserRow({ user, can }: { user: User; can: Permissions }) {
  const { user: me } = useSession();
  const change = useUserChange(user.id);
  const [password, setPassword] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const manage = can.may("user.manage", user);
  const admin = can.may("user.administer", user);
  const run = (c: UserChange, message: string, then?: () => void) => {
    setDone(null);
    change.mutate(c, {
      onSuccess: () => {
        setDone(message);
        then?.();
      },
    });
  };
  return (
    <tr data-user={user.email}>
      <td>{user.email}</td>
      <td>{user.full_name}</td>
      <td>
        {admin ? (
          <select
            aria-label={`role of ${user.email}`}
            value={user.role}
            onChange={(e) =>
              run({ action: "role", role: e.target.value as Role }, "role changed")
            }
          >
            <option value="user">user</option>
            <option value="moderator">moderator</option>
            <option value="admin">admin</option>
          </select>
        ) : (
          user.role
        )}
      </td>
      <td>{user.notify_level}</td>
      <td>
        <StateBadge state={user.blocked ? "blocked" : "online"} />
      </td>
      <td>{fmtDate(user.created_at)}</td>
      <td>
        {manage || admin ? (
          <div className="row wrap">
            {user.blocked ? (
              <button type="button" className="secondary" data-testid="unblock" onClick={() => run({ action: "unblock" }, "unblocked")}>
                Unblock
              </button>
            ) : (
              <button
                type="button"
                className="danger"
                data-testid="block"
                onClick={() => {
                  if (window.confirm(`Block ${user.email}? They are logged out everywhere.`)) {
                    run({ action: "block" }, "blocked");
                  }
                }}
              >
                Block
              </button>
            )}
            {password === null ? (
              <button type="button" className="secondary" onClick={() => setPassword("")}>
                Set password
              </button>
            ) : (
              <form
                className="row"
                onSubmit={(e: FormEvent) => {
                  e.preventDefault();
                  run({ action: "password", password }, "password set", () => setPassword(null));
                }}
              >
                <input
                  type="password"
                  aria-label={`new password of ${user.email}`}
                  minLength={8}
                  required
                  autoComplete="new-password"
                  value={password}
                  onChange={(e) => setPassword(e.target.value)}
                />
                <button type="submit">Save</button>
              </form>
            )}
            {admin ? (
              <>
                <button type="button" className="secondary" onClick={() => run({ action: "revoke-sessions" }, "logged out everywhere")}>
                  Log out everywhere
                </button>
                <button
                  type="button"
                  className="danger"
                  onClick={() => {
                    if (window.confirm(`Delete ${user.email}?`)) run({ action: "delete" }, "deleted");
                  }}
                >
                  Delete
                </button>
              </>
            ) : null}
          </div>
        ) : (
          <span className="muted small">{me?.id === user.id ? "you (see your profile)" : "—"}</span>
        )}
        {done ? <span className="note small"> {done}</span> : null}
        <ErrorBox error={change.error} />
      </td>
    </tr>
  );
}

function CreateUser({ onDone }: { onDone: () => void }) {
  const create = useCreateUser();
  const [v, setV] = useState({ email: "", full_name: "", password: "", role: "user" as Role, notify_level: "error" as Schemas["NotifyLevel"] });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(v, { onSuccess: onDone });
  };
  return (
    <Card title="Add user">
      <form className="form-grid" onSubmit={submit} data-testid="user-form">
        <label>
          E-mail
          <input name="email" type="email" required value={v.email} onChange={(e) => setV({ ...v, email: e.target.value })} />
        </label>
        <label>
          Name
          <input name="full_name" value={v.full_name} onChange={(e) => setV({ ...v, full_name: e.target.value })} />
        </label>
        <label>
          Password
          <input name="password" type="password" minLength={8} required autoComplete="new-password" value={v.password} onChange={(e) => setV({ ...v, password: e.target.value })} />
        </label>
        <label>
          Role
          <select name="role" value={v.role} onChange={(e) => setV({ ...v, role: e.target.value as Role })}>
            <option value="user">user</option>
            <option value="moderator">moderator</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label>
          Mail
          <select name="notify_level" value={v.notify_level} onChange={(e) => setV({ ...v, notify_level: e.target.value as Schemas["NotifyLevel"] })}>
            <option value="error">errors only</option>
            <option value="info">every event</option>
          </select>
        </label>
        <div className="wide">
          <ErrorBox error={create.error} />
          <button type="submit" disabled={create.isPending}>
            Create
          </button>
        </div>
      </form>
    </Card>
  );
}
