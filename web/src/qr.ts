// A QR code drawn on a canvas (qrcode-generator computes the modules; no markup, no data:
// URL), for authenticator apps to scan an `otpauth://` address.

import qrcode from "qrcode-generator";
import { h } from "./dom";

/** A canvas showing `text` as a QR code, `cell` pixels per module, with a quiet zone. */
export function qrCanvas(text: string, cell = 5, label = "QR code"): HTMLCanvasElement {
  const qr = qrcode(0, "M");
  qr.addData(text, "Byte");
  qr.make();
  const count = qr.getModuleCount();
  const margin = 4;
  const size = (count + margin * 2) * cell;
  const canvas = h("canvas", { width: size, height: size, role: "img", "aria-label": label, class: "qr" });
  const ctx = canvas.getContext("2d");
  if (!ctx) return canvas;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, size, size);
  ctx.fillStyle = "#000";
  for (let row = 0; row < count; row++) {
    for (let col = 0; col < count; col++) {
      if (qr.isDark(row, col)) ctx.fillRect((col + margin) * cell, (row + margin) * cell, cell, cell);
    }
  }
  return canvas;
}
