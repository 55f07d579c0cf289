//! The load generator's own WebSocket framing for the receive path (`--client raw`).
//!
//! The opening handshake is tungstenite's; after it the socket is read here, frame by frame,
//! straight out of one reusable buffer per connection. Compared with tungstenite's read path
//! this skips, per message, the split-off `Bytes` (two atomic reference-count operations), the
//! UTF-8 validation of the whole text (the scanner only reads an ASCII prefix) and the clock read
//! (one per `read` call: every message in a read arrived at the same moment). It is a client
//! for this server only: server frames are unmasked and never fragmented (tungstenite writes
//! each message as one frame), pings are answered with masked pongs, and anything else
//! unexpected ends the connection with an error.

use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    /// Bytes of header (including a mask key, if any).
    pub len: usize,
    pub payload: usize,
}

/// Parses the header at the start of `buf`, or `None` if it is not complete yet.
pub fn parse_header(buf: &[u8]) -> Option<Header> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    let masked = b1 & 0x80 != 0;
    let (payload, mut len) = match b1 & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        short => (usize::from(short), 2),
    };
    if masked {
        len += 4;
    }
    Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        masked,
        len,
        payload,
    })
}

/// A complete client frame (FIN set, masked with `key`, as RFC 6455 requires of clients).
pub fn client_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Reads server frames out of one growing buffer.
#[derive(Debug)]
pub struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    key: [u8; 4],
    /// Pongs owed, written after the frames of a read are handled.
    out: Vec<u8>,
}

impl Reader {
    pub fn new(stream: TcpStream, buffer: usize, key: [u8; 4]) -> Self {
        Self {
            stream,
            buf: vec![0; buffer.max(1024)],
            start: 0,
            end: 0,
            key,
            out: Vec::new(),
        }
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        let frame = client_frame(OP_TEXT, text.as_bytes(), self.key);
        self.stream.write_all(&frame).await
    }

    /// Waits for data, then calls `on_text` with every complete text payload now buffered.
    /// Answers pings. `Ok(false)` when the server closed the connection.
    pub async fn read(&mut self, mut on_text: impl FnMut(&[u8])) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < 4096 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // One frame larger than the buffer (a big snapshot): grow.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Ok(false);
        }
        self.end += n;
        let mut open = true;
        while let Some(header) = parse_header(&self.buf[self.start..self.end]) {
            let total = header.len + header.payload;
            if self.end - self.start < total {
                break;
            }
            let payload = &self.buf[self.start + header.len..self.start + total];
            self.start += total;
            if header.masked || !header.fin || header.opcode == OP_CONTINUATION {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unexpected masked or fragmented frame from the server",
                ));
            }
            match header.opcode {
                OP_TEXT | OP_BINARY => on_text(payload),
                OP_PING => {
                    let pong = client_frame(OP_PONG, payload, self.key);
                    self.out.extend_from_slice(&pong);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    open = false;
                    break;
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unknown opcode from the server",
                    ));
                }
            }
        }
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_of_every_length_form() {
        let cases: [(&[u8], Option<Header>); 5] = [
            (&[0x81], None),
            (
                &[0x81, 5],
                Some(Header {
                    fin: true,
                    opcode: OP_TEXT,
                    masked: false,
                    len: 2,
                    payload: 5,
                }),
            ),
            (
                &[0x89, 126, 0x01, 0x00],
                Some(Header {
                    fin: true,
                    opcode: OP_PING,
                    masked: false,
                    len: 4,
                    payload: 256,
                }),
            ),
            (&[0x01, 127, 0, 0, 0, 0, 0, 1], None),
            (
                &[0x01, 127, 0, 0, 0, 0, 0, 1, 0, 0],
                Some(Header {
                    fin: false,
                    opcode: OP_TEXT,
                    masked: false,
                    len: 10,
                    payload: 65_536,
                }),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_header(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn client_frames_are_masked_and_round_trip() {
        let key = [1, 2, 3, 4];
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frame = client_frame(OP_TEXT, &payload, key);
            let header = parse_header(&frame).unwrap();
            assert!(header.fin && header.masked, "{len}");
            assert_eq!(header.payload, len);
            assert_eq!(frame.len(), header.len + len);
            let unmasked: Vec<u8> = frame[header.len..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
    }
}
