// Checks the console's remote desktop codec (web/src/desktop-codec.ts) in Node.js: the
// bytes it sends are the ones crates/proto/src/desktop.rs decodes (the same vectors as its
// tests), and its deframer gives the same commands however the stream is cut. Run by
// crates/server/tests/desktop_console.rs; prints "ok desktop-codec" on success.
//
//   node web/e2e/desktop-codec.mjs

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";
import assert from "node:assert/strict";

const source = readFileSync(fileURLToPath(new URL("../src/desktop-codec.ts", import.meta.url)), "utf8");
const { code } = await transform(source, { loader: "ts", format: "esm" });
const { Deframer, DesktopStreamError, decodeFromAgent, toAgent, KEY, BUTTON, imageType, imageSize } = await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);

const bytes = (u8) => [...u8];

// What the viewer sends (docs/protocol/desktop.md §4), byte for byte.
assert.deepEqual(bytes(toAgent.compression(1, 50, 1024, 100)), [0, 5, 0, 10, 1, 50, 4, 0, 0, 100]);
assert.deepEqual(bytes(toAgent.pause(false)), [0, 8, 0, 5, 0]);
assert.deepEqual(bytes(toAgent.refresh()), [0, 6, 0, 4]);
assert.deepEqual(bytes(toAgent.key(KEY.DOWN, 16)), [0, 1, 0, 6, 0, 16]);
assert.deepEqual(bytes(toAgent.key(KEY.EXTENDED_DOWN, 0x5b)), [0, 1, 0, 6, 4, 0x5b]);
assert.deepEqual(bytes(toAgent.keyUnicode(true, 0x41)), [0, 85, 0, 7, 1, 0, 0x41]);
assert.deepEqual(bytes(toAgent.keyUnicode(false, 0x263a)), [0, 85, 0, 7, 0, 0x26, 0x3a]);
assert.deepEqual(bytes(toAgent.ctrlAltDel()), [0, 10, 0, 4]);
assert.deepEqual(bytes(toAgent.mouse(BUTTON.LEFT_DOWN, 256, 20)), [0, 2, 0, 10, 0, 2, 1, 0, 0, 20]);
assert.deepEqual(bytes(toAgent.wheel(1, 2, -121)), [0, 2, 0, 12, 0, 0, 0, 1, 0, 2, 0xff, 0x87]);
assert.deepEqual(bytes(toAgent.setDisplay(65535)), [0, 12, 0, 6, 0xff, 0xff]);
assert.deepEqual(bytes(toAgent.inputLock(2)), [0, 87, 0, 5, 2]);
assert.deepEqual(bytes(toAgent.getDisplays()), [0, 11, 0, 4]);
// Coordinates outside 0..65535 are clamped, not wrapped.
assert.deepEqual(bytes(toAgent.mouse(0, -5, 70000)), [0, 2, 0, 10, 0, 0, 0, 0, 0xff, 0xff]);

// What the agent sends, as one stream: screen size, a small tile, a tile over 64 KiB (in the
// wrapper), a display list, an alert; cut at every size the result is the same.
function command(cmd, body) {
  const size = body.length + 4;
  if (size > 0xffff) {
    const head = [0, 27, 0, 8, (size >>> 24) & 255, (size >>> 16) & 255, (size >>> 8) & 255, size & 255, cmd >> 8, cmd & 255, 0, 0];
    return [...head, ...body];
  }
  return [cmd >> 8, cmd & 255, size >> 8, size & 255, ...body];
}
const big = Array.from({ length: 70000 }, (_, i) => (i * 7) & 255);
big[0] = 0xff;
big[1] = 0xd8;
const stream = Uint8Array.from([
  ...command(7, [4, 0, 3, 0]),
  ...command(3, [0, 16, 0, 32, 0xff, 0xd8, 1, 2, 3]),
  ...command(3, [0, 0, 0, 0, ...big]),
  ...command(11, [0, 2, 0, 1, 0xff, 0xff, 0, 1]),
  ...command(65, [...new TextEncoder().encode("No X display found ✗")]),
  ...command(999, [1, 2]),
]);
for (const split of [1, 2, 3, 5, 11, 4096, 65536, stream.length]) {
  const d = new Deframer();
  const got = [];
  for (let at = 0; at < stream.length; at += split) {
    d.push(stream.subarray(at, at + split));
    for (let c = d.next(); c; c = d.next()) got.push(decodeFromAgent(c));
  }
  assert.equal(d.pending, 0, `split ${split}: nothing left over`);
  assert.equal(got.length, 6, `split ${split}: six commands`);
  assert.deepEqual(got[0], { kind: "screen", width: 1024, height: 768 });
  assert.equal(got[1].kind, "tile");
  assert.deepEqual([got[1].x, got[1].y, ...got[1].image], [16, 32, 0xff, 0xd8, 1, 2, 3]);
  assert.equal(got[2].image.length, 70000);
  assert.deepEqual(bytes(got[2].image.subarray(0, 4)), big.slice(0, 4));
  assert.deepEqual(got[3], { kind: "displays", ids: [1, 65535], selected: 1 });
  assert.deepEqual(got[4], { kind: "alert", text: "No X display found ✗" });
  assert.deepEqual(got[5], { kind: "other", cmd: 999 });
}

// Broken streams are refused, not waited on.
const broken = (b, limit) => {
  const d = new Deframer(limit);
  d.push(Uint8Array.from(b));
  return () => {
    for (let c = d.next(); c; c = d.next()) decodeFromAgent(c);
  };
};
assert.throws(broken([0, 3, 0, 2]), DesktopStreamError);
assert.throws(broken([0, 27, 0, 8, 0, 1, 0, 0, 0, 3, 0, 0], 1000), DesktopStreamError);
assert.throws(broken([0, 27, 0, 9, 0, 0, 0, 0, 0, 3, 0, 0]), DesktopStreamError);
assert.throws(broken([0, 7, 0, 6, 0, 0]), DesktopStreamError);
assert.throws(broken([0, 11, 0, 8, 0, 3, 0, 1]), DesktopStreamError);

assert.equal(imageType(Uint8Array.from([0x89, 0x50, 0x4e, 0x47])), "image/png");
assert.equal(imageType(Uint8Array.from([0xff, 0xd8, 0xff])), "image/jpeg");
assert.equal(imageType(Uint8Array.from([0x52, 0x49, 0x46, 0x46, 0, 0, 0, 0, 0x57, 0x45, 0x42, 0x50])), "image/webp");

// Tile sizes from their headers, as proto::desktop's image_size (same vectors as its tests).
const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 1, 0, 0, 0, 0, 0x40, 0]);
assert.deepEqual(imageSize(png), { width: 256, height: 64 });
const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0, 8, 0, 16, 3]);
assert.deepEqual(imageSize(jpeg), { width: 16, height: 8 });
assert.equal(imageSize(new Uint8Array([0xff, 0xd8, 0xff])), null);
assert.equal(imageSize(new TextEncoder().encode("GIF89a")), null);

console.log("ok desktop-codec");
