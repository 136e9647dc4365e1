/**
 * The login session: the access token lives in memory only; the refresh token is the
 * httpOnly `hpcgate_refresh` cookie (Path=/auth) that page scripts never see.
 *
 * - `restore()` on page load exchanges the cookie for an access token (POST /auth/refresh).
 * - A timer refreshes the token before it expires; a 401 from any call refreshes once too.
 * - Refreshes are single-flight inside a tab, and serialized across tabs with the Web Locks
 *   API: the server rotates the cookie on every refresh and treats a reused (already
 *   rotated) cookie as theft, revoking the whole login, so two tabs must never present the
 *   same cookie concurrently. Inside the lock the browser sends the newest cookie.
 * - Logout is broadcast to the other tabs (BroadcastChannel), which drop their token.
 */
import type { Schemas } from "./client";

export type User = Schemas["UserOut"];
type TokenResponse = Schemas["TokenResponse"];

export interface SessionState {
  user: User | null;
  /** true until the first restore() attempt has settled */
  restoring: boolean;
}

type Listener = (state: SessionState) => void;

/** Seconds before expiry at which the token is refreshed (half the lifetime when short). */
export function refreshDelaySeconds(expiresIn: number): number {
  const lead = expiresIn > 120 ? expiresIn - 60 : expiresIn / 2;
  return Math.max(1, lead);
}

export class AuthSession {
  private token: string | null = null;
  private expiresAt = 0;
  private state: SessionState = { user: null, restoring: true };
  private listeners = new Set<Listener>();
  private inflight: Promise<string | null> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private channel: BroadcastChannel | null = null;
  /** Number of successful refreshes (shown nowhere; handy in tests and debugging). */
  refreshCount = 0;

  constructor(private readonly fetchImpl: typeof fetch = (...a) => globalThis.fetch(...a)) {
    if (typeof BroadcastChannel !== "undefined") {
      this.channel = new BroadcastChannel("hpcgate-auth");
      this.channel.onmessage = (ev: MessageEvent) => {
        if (ev.data === "logout") this.clear();
      };
    }
  }

  getToken = (): string | null => this.token;

  get snapshot(): SessionState {
    return this.state;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(state: SessionState): void {
    this.state = state;
    for (const l of this.listeners) l(state);
  }

  private accept(body: TokenResponse): void {
    this.token = body.access_token;
    this.expiresAt = Date.now() + body.expires_in * 1000;
    this.emit({ user: body.user, restoring: false });
    this.schedule(body.expires_in);
  }

  private schedule(expiresIn: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.refresh();
    }, refreshDelaySeconds(expiresIn) * 1000);
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.token = null;
    this.expiresAt = 0;
    this.emit({ user: null, restoring: false });
  }

  /** Replace the signed-in user's data (after editing the own profile). */
  updateUser(user: User): void {
    this.emit({ ...this.state, user });
  }

  async login(email: string, password: string): Promise<User> {
    const response = await this.fetchImpl("/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email, password }),
      credentials: "same-origin",
    });
    const body = (await response.json().catch(() => ({}))) as Partial<TokenResponse> & {
      detail?: unknown;
    };
    if (!response.ok || !body.access_token) {
      const retry = response.headers.get("Retry-After");
      const detail = typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
      throw new Error(retry ? `${detail} (retry in ${retry} s)` : detail);
    }
    this.accept(body as TokenResponse);
    return (body as TokenResponse).user;
  }

  /** Called once at start-up: a live cookie logs the user in without a password. */
  async restore(): Promise<User | null> {
    const token = await this.refresh();
    if (!token) this.clear();
    return this.state.user;
  }

  /** Exchange the cookie for a new access token (single-flight, serialized across tabs). */
  refresh(): Promise<string | null> {
    if (!this.inflight) {
      this.inflight = this.withLock(() => this.doRefresh()).finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    if (locks?.request) {
      return locks.request("hpcgate-refresh", fn) as Promise<T>;
    }
    return fn();
  }

  private async doRefresh(): Promise<string | null> {
    try {
      const response = await this.fetchImpl("/auth/refresh", {
        method: "POST",
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) {
        if (response.status === 401 || response.status === 403) this.clear();
        return null;
      }
      this.accept((await response.json()) as TokenResponse);
      this.refreshCount += 1;
      return this.token;
    } catch {
      return null; // network error: keep the state, the next call or timer tries again
    }
  }

  /** Refresh now when the token is gone or about to expire (e.g. a tab woke from sleep). */
  async ensureFresh(): Promise<void> {
    if (this.state.user && Date.now() > this.expiresAt - 30_000) await this.refresh();
  }

  async logout(): Promise<void> {
    try {
      await this.fetchImpl("/auth/logout", { method: "POST", credentials: "same-origin" });
    } finally {
      this.clear();
      this.channel?.postMessage("logout");
    }
  }
}
