/**
 * A molecule's 3D structure, drawn by 3Dmol.js (WebGL). The library (~0.5 MB) is loaded on
 * demand with a dynamic import, so it is a separate chunk and the main bundle stays small.
 * Without WebGL (or when the library fails to start) the page says so; the atoms table next
 * to the viewer shows the geometry in any case.
 */
import { useEffect, useRef, useState } from "react";
import { type Atom, toXyz } from "../lib/molecule";

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
        // a slanted view, so that planar molecules (often given in a coordinate plane) are not edge-on
        v.rotate(-25, "x");
        v.rotate(35, "y");
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
