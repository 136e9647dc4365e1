/**
 * What each role may do in the portal. The API enforces the same rules (it is the
 * authority: a hidden button is a convenience, a 403 is the guarantee); keep the two in
 * step with `hpcgate/api/deps_auth.py` and the route dependencies.
 */
export type Role = "user" | "moderator" | "admin";

const RANK: Record<Role, number> = { user: 0, moderator: 1, admin: 2 };

export function atLeast(role: string | undefined | null, minimum: Role): boolean {
  if (!role || !(role in RANK)) return false;
  return RANK[role as Role] >= RANK[minimum];
}

export type Action =
  | "calculation.approve"
  | "calculation.priority"
  | "users.view"
  | "users.block"
  | "users.password"
  | "users.create"
  | "users.delete"
  | "users.role"
  | "clusters.manage"
  | "logs.delete";

const MINIMUM: Record<Action, Role> = {
  "calculation.approve": "moderator",
  "calculation.priority": "moderator",
  "users.view": "moderator",
  "users.block": "moderator",
  "users.password": "moderator",
  "users.create": "admin",
  "users.delete": "admin",
  "users.role": "admin",
  "clusters.manage": "admin",
  "logs.delete": "admin",
};

export function can(role: string | undefined | null, action: Action): boolean {
  return atLeast(role, MINIMUM[action]);
}

/** Moderators manage plain users only; admins everyone; nobody themselves (use the profile). */
export function canManage(
  actor: { id: number; role: string } | null | undefined,
  target: { id: number; role: string },
): boolean {
  if (!actor || actor.id === target.id) return false;
  if (actor.role === "admin") return true;
  return actor.role === "moderator" && target.role === "user";
}

export interface NavItem {
  to: string;
  label: string;
  minimum: Role;
  /** a capability of the server the section needs (hidden without it) */
  needs?: "models";
}

export const NAV: NavItem[] = [
  { to: "/", label: "Dashboard", minimum: "user" },
  { to: "/calculations", label: "Calculations", minimum: "user" },
  { to: "/analyses", label: "Analyses", minimum: "user" },
  { to: "/molecules", label: "Molecules", minimum: "user" },
  { to: "/models", label: "Models", minimum: "user", needs: "models" },
  { to: "/clusters", label: "Clusters", minimum: "user" },
  { to: "/logs", label: "Logs", minimum: "user" },
  { to: "/users", label: "Users", minimum: "moderator" },
];

export function navFor(role: string | undefined | null, has: { models: boolean }): NavItem[] {
  return NAV.filter((item) => atLeast(role, item.minimum) && (!item.needs || has[item.needs]));
}
