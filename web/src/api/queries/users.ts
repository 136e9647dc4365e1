/** Users (moderators and admins): the list and the changes made to accounts. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import type { Schemas } from "../client";
import { useApi } from "../context";
import { keys, type UserListQuery } from "./keys";
import { useApiMutation } from "./mutation";

export function useUsers(query: UserListQuery) {
  const api = useApi();
  return useQuery({
    queryKey: keys.users.list(query),
    queryFn: ({ signal }) => api.get("/users", { query, signal }),
    placeholderData: keepPreviousData,
  });
}

export type UserChange =
  | { action: "role"; role: Schemas["Role"] }
  | { action: "block" | "unblock" | "revoke-sessions" | "delete" }
  | { action: "password"; password: string };

export function useUserChange(userId: number) {
  return useApiMutation(
    (api, c: UserChange): Promise<unknown> => {
      const path = { user_id: userId };
      switch (c.action) {
        case "role":
          return api.patch("/users/{user_id}", { path, body: { role: c.role } });
        case "block":
          return api.post("/users/{user_id}/block", { path });
        case "unblock":
          return api.post("/users/{user_id}/unblock", { path });
        case "revoke-sessions":
          return api.post("/users/{user_id}/revoke-sessions", { path });
        case "delete":
          return api.delete("/users/{user_id}", { path });
        case "password":
          return api.put("/users/{user_id}/password", { path, body: { password: c.password } });
      }
    },
    () => [keys.users.all],
  );
}

export function useCreateUser() {
  return useApiMutation(
    (api, body: Schemas["UserCreate"]) => api.post("/users", { body }),
    () => [keys.users.all],
  );
}
