/** Text input files (read in the browser, sent inside the configuration) and a .json loader. */
import type { ChangeEvent } from "react";
import type { SectionProps } from "./formState";

async function readFiles(list: FileList | null): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const file of Array.from(list ?? [])) out[file.name] = await file.text();
  return out;
}

export function InputFiles({ state, dispatch }: SectionProps) {
  const onInputFiles = async (e: ChangeEvent<HTMLInputElement>) => {
    const input = e.target;
    const files = await readFiles(input.files);
    dispatch({ type: "inputs-added", files });
    input.value = "";
  };
  const onConfigFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const input = e.target;
    const file = input.files?.[0];
    if (!file) return;
    const text = await file.text();
    dispatch({ type: "mode", mode: "json" });
    dispatch({ type: "json", text });
    input.value = "";
  };
  return (
    <>
      <div className="row uploads">
        <label className="file">
          Input files
          <input type="file" multiple name="input_files" onChange={(e) => void onInputFiles(e)} />
        </label>
        <label className="file">
          Load a configuration (.json)
          <input
            type="file"
            accept=".json,application/json"
            name="config_file"
            onChange={(e) => void onConfigFile(e)}
          />
        </label>
      </div>
      {Object.keys(state.inputs).length ? (
        <ul className="files" data-testid="input-files">
          {Object.entries(state.inputs).map(([fname, text]) => (
            <li key={fname}>
              <code>{fname}</code> ({text.length.toLocaleString()} bytes){" "}
              <button type="button" className="link" onClick={() => dispatch({ type: "input-removed", name: fname })}>
                remove
              </button>
            </li>
          ))}
        </ul>
      ) : null}
    </>
  );
}
