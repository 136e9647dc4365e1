/**
 * What the signed-in user may do, as the server says: `GET /auth/me` lists `permissions`
 * from its one policy table (`hpcgate/domain/access.py`). The portal only reads that list —
 * no rule is repeated here; a hidden button is a convenience, the API's 403 the guarantee.
 *
 * A permission is `"<action>"` (on anything) or `"<action>:<scope>"` (only within the
 * scope): `own` — resources the user owns; `lower_role` — accounts whose role ranks below
 * the user's. Nobody acts on their own account through an action (the profile is for that).
 */
import { useQuery } from "@tanstack/react-query";
import type { Schemas } from "./client";
import { useApi, useSession } from "./context";
import { keys } from "./queries/keys";

type Role = Schemas["Role"];

/** The roles from lowest to highest (the schema's enum; `satisfies` fails if one is added). */
const RANKS = ["user", "moderator", "admin"] as const satisfies readonly Role[];
type _AllRanked = Exclude<Role, (typeof RANKS)[number]> extends never ? true : never;
const _allRanked: _AllRanked = true;
void _allRanked;

/** The resource an action is about: something owned, or another account. */
export type Target = { owner_id: number } | { id: number; role: Role };

export interface Permissions {
  /** `may("calculation.cancel", calc)`: allowed on this target (or on anything, without one). */
  may: (action: string, target?: Target) => boolean;
}

export function permissionsOf(me: { id: number; role: Role; permissions: readonly string[] }): Permissions {
  const granted = new Set(me.permissions);
  return {
    may(action, target) {
      if (target && "role" in target && target.id === me.id) return false;
      if (granted.has(action)) return true;
      if (!target) return false;
      if ("owner_id" in target) return granted.has(`${action}:own`) && target.owner_id === me.id;
      return granted.has(`${action}:lower_role`) && RANKS.indexOf(target.role) < RANKS.indexOf(me.role);
    },
  };
}

/** `GET /auth/me` of the signed-in user, cached until the user changes. */
export function useMe() {
  const api = useApi();
  const { user } = useSession();
  return useQuery({
    queryKey: [...keys.me, user?.id ?? null],
    queryFn: ({ signal }) => api.get("/auth/me", { signal }),
    enabled: user !== null,
    staleTime: 60_000,
  });
}

const NOBODY: Permissions = { may: () => false };

export function usePermissions(): Permissions {
  const me = useMe();
  return me.data ? permissionsOf(me.data) : NOBODY;
}
