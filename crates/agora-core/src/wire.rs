//! The wire encoding shared by the simulator's byte counts and the TCP runtime's frames.
//!
//! **Encoding: postcard.** Messages are serde types encoded with postcard 1.x: a compact,
//! varint-based, documented and frozen format (postcard's wire format is stable across 1.x),
//! with no schema negotiation and no per-field tags. Small protocol messages (an id and a
//! counter) encode in a handful of bytes, which is what a message-complexity report should
//! count. bincode was the alternative; its fixed-width integers make small messages larger and
//! its 2.x format differs from 1.x, so postcard gives the more honest and more stable count.
//!
//! **Frame:** `[len: u32 big-endian][payload: len bytes]` where the payload is the postcard
//! encoding of the message. A frame therefore costs `4 + payload` bytes on the wire, and that
//! is the figure the simulator reports as a message's bytes. `len` is checked against
//! [`MAX_FRAME_BYTES`] before anything is allocated.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes of the length prefix of every frame.
pub const FRAME_HEADER_BYTES: usize = 4;

/// The largest payload a frame may carry. Larger length prefixes are refused unread.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why bytes are not a message: what a peer or a disk may hand in, reported, never a panic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The payload is not a postcard encoding of the expected type (postcard's reason).
    #[error("cannot decode payload: {0}")]
    Decode(String),
    /// A length prefix over the limit, refused before anything is allocated.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length the prefix announced, in bytes.
        len: usize,
        /// The limit it exceeds ([`MAX_FRAME_BYTES`]), in bytes.
        max: usize,
    },
    /// The value decoded but did not use every byte of its payload: this many were left over.
    #[error("trailing {0} bytes after the payload")]
    Trailing(usize),
}

/// Encodes `value` with postcard.
///
/// # Panics
/// Only if `value`'s `Serialize` implementation itself fails, which is a bug in that type (the
/// protocol's own message or state), never a consequence of input.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Room for most messages and stored values at once, rather than growing from 8 bytes
    // by doubling (one allocation instead of three or four).
    postcard::to_extend(value, Vec::with_capacity(64))
        .expect("protocol types serialize infallibly with postcard")
}

/// Appends the postcard encoding of `value` to `buf` and returns its length.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    let owned = std::mem::take(buf);
    *buf = postcard::to_extend(value, owned).expect("protocol types serialize infallibly with postcard");
    buf.len() - start
}

/// The size of `value`'s postcard encoding.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).expect("protocol types serialize infallibly with postcard")
}

/// Decodes a whole payload; bytes left over are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| WireError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Trailing(rest.len()));
    }
    Ok(value)
}

/// The bytes a frame carrying a payload of `payload` bytes takes on the wire.
pub fn frame_bytes(payload: usize) -> usize {
    FRAME_HEADER_BYTES + payload
}

/// Appends one frame carrying `value` to `out`.
pub fn write_frame<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    let at = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let len = encode_into(value, out);
    if len > MAX_FRAME_BYTES {
        out.truncate(at);
        return Err(WireError::FrameTooLarge { len, max: MAX_FRAME_BYTES });
    }
    out[at..at + FRAME_HEADER_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Looks for one complete frame at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some((payload, consumed)))` for a whole
/// frame, and an error (before any allocation) when the length prefix is over the maximum.
pub fn read_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, WireError> {
    let Some(header) = buf.get(..FRAME_HEADER_BYTES) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge { len, max: MAX_FRAME_BYTES });
    }
    let end = FRAME_HEADER_BYTES + len;
    Ok(buf.get(FRAME_HEADER_BYTES..end).map(|payload| (payload, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_size() {
        let mut out = Vec::new();
        write_frame(&(7u32, "hi"), &mut out).unwrap();
        assert_eq!(out.len(), frame_bytes(encoded_len(&(7u32, "hi"))));
        let (payload, used) = read_frame(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(decode::<(u32, String)>(payload).unwrap(), (7, "hi".to_string()));
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut out = Vec::new();
        write_frame(&1234u64, &mut out).unwrap();
        for cut in 0..out.len() {
            assert_eq!(read_frame(&out[..cut]).unwrap(), None);
        }
    }

    #[test]
    fn oversize_length_is_refused_before_reading() {
        let buf = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
        assert!(matches!(read_frame(&buf), Err(WireError::FrameTooLarge { .. })));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        assert!(decode::<String>(&[0xff, 0xff, 0xff]).is_err());
        assert_eq!(decode::<u8>(&[1, 2]), Err(WireError::Trailing(1)));
    }
}
