/** Molecule geometry helpers (the API's atoms: [{symbol, xyz}] in Å). */

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
