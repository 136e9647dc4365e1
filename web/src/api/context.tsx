/** The app-wide objects: API client, login session and the server-state cache. */
import { type QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createContext, type ReactNode, useContext, useSyncExternalStore } from "react";
import { AuthSession, type SessionState, type User } from "./auth";
import { ApiClient } from "./client";
import { createQueryClient } from "./queryClient";

export interface AppServices {
  api: ApiClient;
  auth: AuthSession;
  queries: QueryClient;
}

export function createServices(): AppServices {
  const auth = new AuthSession();
  const api = new ApiClient({ getToken: auth.getToken, onUnauthorized: () => auth.refresh() });
  const queries = createQueryClient();
  // What one user may see is not another's: a different (or no) user starts from an empty cache.
  let userId: number | null = null;
  auth.subscribe(({ user }) => {
    const next = user?.id ?? null;
    if (next !== userId) queries.clear();
    userId = next;
  });
  return { api, auth, queries };
}

export const ServicesContext = createContext<AppServices | null>(null);

export function ServicesProvider({ services, children }: { services: AppServices; children: ReactNode }) {
  return (
    <ServicesContext.Provider value={services}>
      <QueryClientProvider client={services.queries}>{children}</QueryClientProvider>
    </ServicesContext.Provider>
  );
}

export function useServices(): AppServices {
  const services = useContext(ServicesContext);
  if (!services) throw new Error("ServicesContext is missing");
  return services;
}

export function useApi(): ApiClient {
  return useServices().api;
}

export function useSession(): SessionState {
  const { auth } = useServices();
  return useSyncExternalStore(
    (listener) => auth.subscribe(listener),
    () => auth.snapshot,
  );
}

/** The signed-in user (pages under the login guard only). */
export function useUser(): User {
  const { user } = useSession();
  if (!user) throw new Error("not signed in");
  return user;
}
