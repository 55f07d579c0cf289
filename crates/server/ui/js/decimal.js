// Exact decimal strings, as the gateway sends prices and sizes. Nothing here turns a price into
// a binary float: levels are keyed and ordered by their exact value, and `toNumber` exists only
// to place things on a chart.

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** The parts of a decimal string, or null: sign, integer digits (no leading zeros), fraction
 * digits (no trailing zeros). */
function parts(text) {
  const m = DECIMAL.exec(text);
  if (!m) return null;
  const int = m[2].replace(/^0+(?=\d)/, "");
  const frac = (m[3] || "").replace(/0+$/, "");
  const zero = int === "0" && frac === "";
  return { negative: m[1] === "-" && !zero, int, frac };
}

/** Whether `text` is a decimal number (`"65000.10"`, `"0"`, `"-1.5"`). */
export function isDecimal(text) {
  return typeof text === "string" && DECIMAL.test(text);
}

/** The canonical spelling: `"100.0"`, `"100.00"` and `"0100"` are all `"100"`. Throws on a
 * string that is not a decimal. */
export function canonical(text) {
  const p = parts(text);
  if (!p) throw new TypeError(`not a decimal: ${JSON.stringify(text)}`);
  return (p.negative ? "-" : "") + p.int + (p.frac ? "." + p.frac : "");
}

/** Whether a decimal string is zero in any spelling (`"0"`, `"0.00000"`). */
export function isZero(text) {
  const p = parts(text);
  if (!p) throw new TypeError(`not a decimal: ${JSON.stringify(text)}`);
  return p.int === "0" && p.frac === "";
}

function compareMagnitude(a, b) {
  if (a.int.length !== b.int.length) return a.int.length < b.int.length ? -1 : 1;
  if (a.int !== b.int) return a.int < b.int ? -1 : 1;
  const n = Math.max(a.frac.length, b.frac.length);
  const fa = a.frac.padEnd(n, "0");
  const fb = b.frac.padEnd(n, "0");
  return fa === fb ? 0 : fa < fb ? -1 : 1;
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`, exactly. */
export function compare(a, b) {
  const pa = parts(a);
  const pb = parts(b);
  if (!pa || !pb) throw new TypeError(`not decimals: ${JSON.stringify(a)}, ${JSON.stringify(b)}`);
  if (pa.negative !== pb.negative) return pa.negative ? -1 : 1;
  const m = compareMagnitude(pa, pb);
  return pa.negative ? -m : m;
}

/** For drawing only (chart coordinates, bar widths): never for identity or checksums. */
export function toNumber(text) {
  return Number(text);
}
