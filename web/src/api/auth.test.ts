import { describe, expect, it, vi } from "vitest";
import { AuthSession, refreshDelaySeconds } from "./auth";

const user = { id: 1, email: "a@b.c", full_name: "", role: "user", notify_level: "error", blocked: false, created_at: "2024-01-01T00:00:00Z" };

function token(n: number) {
  return new Response(JSON.stringify({ access_token: `t${n}`, token_type: "bearer", expires_in: 900, user }), {
    status: 200,
    headers: { "Content-Type": "application/json" },
  });
}

describe("AuthSession", () => {
  it("refreshes before expiry", () => {
    expect(refreshDelaySeconds(900)).toBe(840);
    expect(refreshDelaySeconds(60)).toBe(30);
    expect(refreshDelaySeconds(0)).toBe(1);
  });

  it("makes concurrent refreshes share one request (a rotated cookie must not be reused)", async () => {
    let n = 0;
    const fetchImpl = vi.fn(async () => {
      await new Promise((r) => setTimeout(r, 5));
      return token(++n);
    });
    const auth = new AuthSession(fetchImpl as unknown as typeof fetch);
    const [a, b, c] = await Promise.all([auth.refresh(), auth.refresh(), auth.refresh()]);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect([a, b, c]).toEqual(["t1", "t1", "t1"]);
    expect(auth.getToken()).toBe("t1");
    expect(auth.snapshot.user?.email).toBe("a@b.c");
    await auth.refresh();
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    await auth.logout().catch(() => undefined);
  });

  it("drops the session when the cookie is refused", async () => {
    const fetchImpl = vi.fn(async () => new Response(JSON.stringify({ detail: "unknown refresh token" }), { status: 401 }));
    const auth = new AuthSession(fetchImpl as unknown as typeof fetch);
    expect(await auth.restore()).toBeNull();
    expect(auth.snapshot).toEqual({ user: null, restoring: false });
  });

  it("reports login failures with the server's message", async () => {
    const fetchImpl = vi.fn(
      async () => new Response(JSON.stringify({ detail: "too many attempts" }), { status: 429, headers: { "Retry-After": "30" } }),
    );
    const auth = new AuthSession(fetchImpl as unknown as typeof fetch);
    await expect(auth.login("a@b.c", "x")).rejects.toThrow("too many attempts (retry in 30 s)");
  });
});
