// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): the one of zlib's crc32 and of Rust's
// crc32fast, which crates/book/src/checksum.rs uses for the book checksum.

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The CRC-32 of `bytes` (a Uint8Array), as an unsigned 32-bit integer. */
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const encoder = new TextEncoder();

/** The CRC-32 of a string's UTF-8 bytes (book checksum strings are ASCII). */
export function crc32Text(text) {
  return crc32(encoder.encode(text));
}
