/** The app-wide objects: API client, login session and server capabilities. */
import { createContext, useContext, useSyncExternalStore } from "react";
import { AuthSession, type SessionState, type User } from "./auth";
import { ApiClient } from "./client";
import { type Capabilities, NO_CAPABILITIES } from "./capabilities";

export interface AppServices {
  api: ApiClient;
  auth: AuthSession;
  caps: Capabilities;
}

export function createServices(caps: Capabilities = NO_CAPABILITIES): AppServices {
  const auth = new AuthSession();
  const api = new ApiClient({ getToken: auth.getToken, onUnauthorized: () => auth.refresh() });
  return { api, auth, caps };
}

export const ServicesContext = createContext<AppServices | null>(null);

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
