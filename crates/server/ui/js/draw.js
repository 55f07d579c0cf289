// Canvas drawing for the market view: the depth chart. Numbers here are only for placing
// pixels; the book itself stays exact decimal strings (book.js).

import { toNumber } from "./decimal.js";

const BID = "#26a69a";
const ASK = "#ef5350";

/** CSS sizes of observed canvases: read from a ResizeObserver, so drawing never forces a
 * synchronous layout. */
const sizes = new WeakMap();
const observer =
  typeof ResizeObserver === "function"
    ? new ResizeObserver((entries) => {
        for (const e of entries) sizes.set(e.target, { w: e.contentRect.width, h: e.contentRect.height });
      })
    : null;

/** Sizes the canvas backing store to its CSS box (and the device pixel ratio). */
function fit(canvas) {
  const ratio = globalThis.devicePixelRatio || 1;
  if (!sizes.has(canvas)) {
    sizes.set(canvas, { w: canvas.clientWidth, h: canvas.clientHeight });
    observer?.observe(canvas);
  }
  const css = sizes.get(canvas);
  const w = Math.max(1, Math.round(css.w * ratio));
  const h = Math.max(1, Math.round(css.h * ratio));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  return { w, h, ratio };
}

/** Cumulative [price, total] steps from best-first levels. */
function cumulative(levels) {
  let total = 0;
  return levels.map((l) => {
    total += toNumber(l.size);
    return [toNumber(l.price), total];
  });
}

/**
 * The depth chart of `top` ({bids, asks}, best first): cumulative size against price, bids on
 * the left, asks on the right.
 */
export function drawDepth(canvas, top) {
  const ctx = canvas.getContext("2d");
  const { w, h, ratio } = fit(canvas);
  ctx.clearRect(0, 0, w, h);
  const bids = cumulative(top.bids);
  const asks = cumulative(top.asks);
  if (bids.length === 0 && asks.length === 0) return;
  const prices = [...bids, ...asks].map(([p]) => p);
  const lo = Math.min(...prices);
  const hi = Math.max(...prices);
  const maxTotal = Math.max(bids.at(-1)?.[1] || 0, asks.at(-1)?.[1] || 0) || 1;
  const pad = 4 * ratio;
  const x = (p) => (hi === lo ? w / 2 : pad + ((p - lo) / (hi - lo)) * (w - 2 * pad));
  const y = (t) => h - pad - (t / maxTotal) * (h - 2 * pad);
  const side = (steps, color) => {
    if (steps.length === 0) return;
    ctx.beginPath();
    ctx.moveTo(x(steps[0][0]), h - pad);
    let last = steps[0];
    for (const step of steps) {
      ctx.lineTo(x(step[0]), y(last[1]));
      ctx.lineTo(x(step[0]), y(step[1]));
      last = step;
    }
    ctx.lineTo(x(last[0]), h - pad);
    ctx.closePath();
    ctx.globalAlpha = 0.25;
    ctx.fillStyle = color;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5 * ratio;
    ctx.stroke();
  };
  side(bids, BID);
  side(asks, ASK);
}

/** A heat-map colour for a % change: red below zero, green above, saturating at ±`span`%. */
export function heatColor(percent, span = 2) {
  if (percent === null || !Number.isFinite(percent)) return "hsl(220 10% 30%)";
  const t = Math.max(-1, Math.min(1, percent / span));
  const hue = t >= 0 ? 150 : 0;
  const light = 22 + Math.abs(t) * 20;
  return `hsl(${hue} 55% ${light}%)`;
}
