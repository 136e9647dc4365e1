/**
 * Binary input files (electrode `.TSHS`, `.DM`, `.TSDE`, `.psml`, `.ion.nc`): kept as `File`s
 * and sent as they are, in the multipart create request (`lib/uploads.ts`), never in JSON.
 */
import type { ChangeEvent } from "react";
import { BINARY_SUFFIXES } from "../../lib/uploads";

export function BinaryUploads({ files, onChange }: { files: File[]; onChange: (files: File[]) => void }) {
  const onPick = (e: ChangeEvent<HTMLInputElement>) => {
    const added = Array.from(e.target.files ?? []);
    const names = new Set(added.map((f) => f.name));
    onChange([...files.filter((f) => !names.has(f.name)), ...added]);
    e.target.value = "";
  };
  return (
    <div className="binary-inputs">
      <label className="file">
        Binary inputs ({BINARY_SUFFIXES.slice(0, 5).join(", ")}, …)
        <input type="file" multiple name="binary_files" onChange={onPick} />
      </label>
      {files.length ? (
        <ul className="files" data-testid="binary-files">
          {files.map((f) => (
            <li key={f.name}>
              <code>{f.name}</code> ({f.size.toLocaleString()} bytes, sent as is){" "}
              <button type="button" className="link" onClick={() => onChange(files.filter((x) => x !== f))}>
                remove
              </button>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
