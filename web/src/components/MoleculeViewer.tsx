/**
 * A molecule's 3D structure, drawn by 3Dmol.js (WebGL). The library (~0.5 MB) is loaded on
 * demand with a dynamic import, so it is a separate chunk and the main bundle stays small.
 * Without WebGL (or when the library fails to start) the page says so; the atoms table next
 * to the viewer shows the geometry in any case.
 */
import { useEffect, useRef, useState } from "react";

export interface Atom {
  symbol: string;
  xyz: [number, number, number];
}

/** The atoms as standard xyz text (what 3Dmol parses). */
export function toXyz(atoms: readonly Atom[], title = ""): string {
  const lines = atoms.map((a) => `${a.symbol} ${a.xyz.map((v) => v.toFixed(6)).join(" ")}`);
  return `${atoms.length}\n${title.replace(/\s+/g, " ")}\n${lines.join("\n")}\n`;
}

/** The API's atoms ([{symbol, xyz}]) with anything malformed left out. */
export function normalizeAtoms(raw: readonly Record<string, unknown>[] | undefined): Atom[] {
  return (raw ?? [])
    .filter((a) => typeof a.symbol === "string" && Array.isArray(a.xyz) && a.xyz.length >= 3)
    .map((a) => {
      const [x, y, z] = (a.xyz as unknown[]).map(Number);
      return { symbol: String(a.symbol), xyz: [x, y, z] as [number, number, number] };
    })
    .filter((a) => a.xyz.every(Number.isFinite));
}

export function webglAvailable(): boolean {
  try {
    const canvas = document.createElement("canvas");
    return !!(canvas.getContext("webgl2") ?? canvas.getContext("webgl"));
  } catch {
    return false;
  }
}

type Status = "loading" | "ready" | "no-webgl" | "failed";

export function MoleculeViewer({ atoms, title, height = 420 }: { atoms: Atom[]; title: string; height?: number }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>("loading");
  const [problem, setProblem] = useState("");
  const [style, setStyle] = useState<"ball-and-stick" | "spheres" | "sticks">("ball-and-stick");
  const viewerRef = useRef<{ setStyle: (sel: object, style: object) => void; render: () => void } | null>(null);

  useEffect(() => {
    if (!webglAvailable()) {
      setStatus("no-webgl");
      return;
    }
    let cancelled = false;
    let viewer: { clear: () => void } | null = null;
    setStatus("loading");
    import("3dmol")
      .then(($3Dmol) => {
        if (cancelled || !host.current) return;
        const v = $3Dmol.createViewer(host.current, { backgroundColor: "white", antialias: true });
        if (!v) throw new Error("3Dmol could not create a WebGL viewer");
        v.addModel(toXyz(atoms, title), "xyz");
        v.zoomTo();
        v.render();
        viewer = v;
        viewerRef.current = v as unknown as typeof viewerRef.current;
        setStatus("ready");
      })
      .catch((e: unknown) => {
        if (cancelled) return;
        setProblem(e instanceof Error ? e.message : String(e));
        setStatus(webglAvailable() ? "failed" : "no-webgl");
      });
    return () => {
      cancelled = true;
      viewerRef.current = null;
      try {
        viewer?.clear();
      } catch {
        // the canvas is going away anyway
      }
      if (host.current) host.current.innerHTML = "";
    };
  }, [atoms, title]);

  useEffect(() => {
    const v = viewerRef.current;
    if (!v || status !== "ready") return;
    const spec =
      style === "spheres"
        ? { sphere: { scale: 0.9 } }
        : style === "sticks"
          ? { stick: { radius: 0.15 } }
          : { stick: { radius: 0.12 }, sphere: { scale: 0.3 } };
    v.setStyle({}, spec);
    v.render();
  }, [style, status]);

  if (status === "no-webgl" || status === "failed") {
    return (
      <div className="note" data-testid="structure-fallback" role="status">
        3D view needs WebGL, which this browser does not offer
        {status === "failed" && problem ? ` (${problem})` : ""}. The atoms are listed in the table.
      </div>
    );
  }
  return (
    <div data-testid="structure-3d" data-status={status}>
      <div className="row" style={{ marginBottom: 6 }}>
        <label className="inline">
          style{" "}
          <select aria-label="structure style" value={style} onChange={(e) => setStyle(e.target.value as typeof style)}>
            <option value="ball-and-stick">ball and stick</option>
            <option value="sticks">sticks</option>
            <option value="spheres">spheres</option>
          </select>
        </label>
        <span className="muted small">drag to rotate, scroll to zoom</span>
        {status === "loading" ? <span className="muted small">loading the 3D viewer…</span> : null}
      </div>
      <div
        ref={host}
        className="structure-3d"
        style={{ position: "relative", width: "100%", height, border: "1px solid #ddd", borderRadius: 4 }}
      />
    </div>
  );
}
