/** The last part: what the server said, preview (nothing saved) and create. */
import type { Schemas } from "../../api/client";
import { Card, ErrorBox } from "../../components/ui";

type Preview = Schemas["PreviewOut"];

export function ReviewSection({
  error,
  busy,
  canCreate,
  onPreview,
  preview,
}: {
  error: unknown;
  busy: "preview" | "create" | null;
  canCreate: boolean;
  onPreview: () => void;
  /** the planned steps of the form as it is now, if asked for */
  preview: Preview | null;
}) {
  return (
    <>
      <ErrorBox error={error} title="Refused" />
      <div className="row actions">
        <button type="button" className="secondary" disabled={busy !== null} onClick={onPreview} data-testid="preview">
          {busy === "preview" ? "Planning…" : "Preview steps and job scripts"}
        </button>
        <button type="submit" disabled={busy !== null || !canCreate} data-testid="create">
          {busy === "create" ? "Creating…" : "Create calculation"}
        </button>
      </div>
      {preview ? <PreviewView preview={preview} /> : null}
    </>
  );
}

function PreviewView({ preview }: { preview: Preview }) {
  return (
    <Card title={`Preview: ${preview.kind}, ${preview.steps.length} step(s)`} testId="preview-result">
      <table>
        <thead>
          <tr>
            <th>step</th>
            <th>label</th>
            <th>runs after</th>
            <th>array</th>
            <th>files</th>
          </tr>
        </thead>
        <tbody>
          {preview.steps.map((s) => (
            <tr key={s.index}>
              <td>{s.index}</td>
              <td>{s.label}</td>
              <td>{s.parents.length ? s.parents.map((p) => `step ${p}`).join(", ") : "—"}</td>
              <td>{s.array_size ?? "—"}</td>
              <td className="files-cell">{s.files.join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {preview.steps.map((s, i) => (
        <details key={s.index} open={i === 0}>
          <summary>
            Job script of step {s.index} ({s.label})
          </summary>
          <pre className="script" data-testid={`script-${s.index}`}>
            {s.script}
          </pre>
        </details>
      ))}
    </Card>
  );
}
