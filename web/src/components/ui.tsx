/** Small shared pieces: state badges, errors, pager, JSON view, copy-once key box. */
import { type ReactNode, useState } from "react";
import { ApiError } from "../api/client";

export const STATE_CLASS: Record<string, string> = {
  completed: "ok",
  harvested: "ok",
  finished: "ok",
  cleaned: "ok",
  online: "ok",
  running: "run",
  submitted: "run",
  submitting: "run",
  queued: "wait",
  ready: "wait",
  planned: "wait",
  pending_approval: "attn",
  failed: "bad",
  invalid: "bad",
  lost: "bad",
  rejected: "bad",
  offline: "bad",
  cancelled: "muted",
  maintenance: "attn",
  blocked: "bad",
  // ML models
  registered: "muted",
  stopped: "muted",
  starting: "run",
  restarting: "attn",
  healthy: "ok",
  unhealthy: "bad",
  unknown: "muted",
};

export function StateBadge({ state }: { state: string }) {
  return (
    <span className={`badge badge-${STATE_CLASS[state] ?? "muted"}`} data-state={state}>
      {state.replace(/_/g, " ")}
    </span>
  );
}

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  let message = error instanceof Error ? error.message : String(error);
  let extra: ReactNode = null;
  if (error instanceof ApiError) {
    if (error.status === 403) message = `Not allowed: ${message}`;
    const missing = error.body.missing as Record<string, string> | undefined;
    if (missing && Object.keys(missing).length) {
      extra = (
        <ul>
          {Object.entries(missing).map(([k, v]) => (
            <li key={k}>
              <code>{k}</code> — {v}
            </li>
          ))}
        </ul>
      );
    }
  }
  return (
    <div className="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {message}
      {extra}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return <div className="loading">{what}…</div>;
}

export function Pager({
  total,
  limit,
  offset,
  onChange,
}: {
  total: number;
  limit: number;
  offset: number;
  onChange: (offset: number) => void;
}) {
  const page = Math.floor(offset / limit) + 1;
  const pages = Math.max(1, Math.ceil(total / limit));
  return (
    <div className="pager" data-testid="pager">
      <button type="button" disabled={offset === 0} onClick={() => onChange(0)}>
        « First
      </button>
      <button
        type="button"
        disabled={offset === 0}
        onClick={() => onChange(Math.max(0, offset - limit))}
      >
        ‹ Prev
      </button>
      <span>
        page {page} of {pages} · {total.toLocaleString()} total
      </span>
      <button
        type="button"
        disabled={offset + limit >= total}
        onClick={() => onChange(offset + limit)}
      >
        Next ›
      </button>
      <button
        type="button"
        disabled={offset + limit >= total}
        onClick={() => onChange((pages - 1) * limit)}
      >
        Last »
      </button>
    </div>
  );
}

export function JsonView({ value, testId }: { value: unknown; testId?: string }) {
  return (
    <pre className="json" data-testid={testId}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

/** A secret shown once (API keys): copy button, and a clear warning. */
export function SecretOnce({ secret, onDone }: { secret: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret-once" role="status" data-testid="secret-once">
      <p>
        <strong>Copy this key now.</strong> It is shown only once; the server keeps only its hash.
      </p>
      <code className="secret" data-testid="secret-value">
        {secret}
      </code>
      <div className="row">
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard?.writeText(secret).then(() => setCopied(true));
          }}
        >
          {copied ? "Copied" : "Copy"}
        </button>
        <button type="button" className="secondary" onClick={onDone}>
          I have stored it
        </button>
      </div>
    </div>
  );
}

export function Card({
  title,
  children,
  actions,
  testId,
  className,
}: {
  title?: ReactNode;
  children: ReactNode;
  actions?: ReactNode;
  testId?: string;
  className?: string;
}) {
  return (
    <section className={`card ${className ?? ""}`} data-testid={testId}>
      {title || actions ? (
        <header className="card-head">
          {title ? <h2>{title}</h2> : <span />}
          {actions ? <div className="card-actions">{actions}</div> : null}
        </header>
      ) : null}
      {children}
    </section>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}
