//! One file per wire concern: reading frames from a socket, the inbound (reader) side of a
//! connection and the outbound (writer) side with reconnect, backoff and batched writes.
//!
//! Every failure caused by a peer — garbage, a truncated or oversize frame, a wrong handshake,
//! silence — ends that connection with one log line; the node goes on.

use crate::handshake::{Expect, Hello, Reply};
use agora_core::wire::{self, WireError};
use agora_core::{Message, NodeId};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// A message handed from a connection to its node's driver.
pub(crate) struct Inbound<M> {
    pub from: NodeId,
    pub msg: M,
    /// Wire bytes of the frame.
    pub bytes: u32,
}

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed mid-frame ({0} bytes of an unfinished frame)")]
    Truncated(usize),
    #[error("connection closed")]
    Closed,
    #[error("no handshake within {0:?}")]
    Silent(Duration),
    #[error("handshake refused: {0}")]
    Refused(String),
    #[error("malformed handshake: {0}")]
    BadHandshake(WireError),
    #[error("malformed message from node {0}: {1}")]
    BadMessage(NodeId, WireError),
}

/// Buffered frame reader over one socket.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    pub fn new() -> Self {
        FrameReader { buf: Vec::with_capacity(64 * 1024), start: 0 }
    }

    /// The next whole frame's payload (copied out), reading from `stream` as needed.
    /// Lengths over the maximum are refused before anything is allocated for them.
    pub async fn next(&mut self, stream: &mut (impl AsyncReadExt + Unpin)) -> Result<Vec<u8>, ConnError> {
        loop {
            if let Some((payload, used)) = wire::read_frame(&self.buf[self.start..])? {
                let out = payload.to_vec();
                self.start += used;
                return Ok(out);
            }
            self.refill(stream).await?;
        }
    }

    pub async fn refill(&mut self, stream: &mut (impl AsyncReadExt + Unpin)) -> Result<(), ConnError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(if self.buf.is_empty() {
                ConnError::Closed
            } else {
                ConnError::Truncated(self.buf.len())
            });
        }
        Ok(())
    }
}

async fn write_one<T: serde::Serialize>(stream: &mut TcpStream, value: &T) -> Result<(), ConnError> {
    let mut out = Vec::new();
    wire::write_frame(value, &mut out)?;
    stream.write_all(&out).await?;
    Ok(())
}

/// The accepting side of a connection: handshake, then messages into the node's inbox until
/// the peer goes away, misbehaves, or the node stops.
pub(crate) async fn serve_inbound<M: Message>(
    mut stream: TcpStream,
    addr: SocketAddr,
    expect: Expect,
    handshake_timeout: Duration,
    inbox: mpsc::Sender<Inbound<M>>,
    mut stop: watch::Receiver<bool>,
) {
    let me = expect.me;
    let result = tokio::select! {
        r = inbound(&mut stream, &expect, handshake_timeout, &inbox) => r,
        _ = stop.wait_for(|s| *s) => Ok(()),
    };
    match result {
        Ok(()) | Err(ConnError::Closed) => debug!(node = me, %addr, "inbound connection closed"),
        Err(e) => warn!("node {me}: closing connection from {addr}: {e}"),
    }
}

async fn inbound<M: Message>(
    stream: &mut TcpStream,
    expect: &Expect,
    handshake_timeout: Duration,
    inbox: &mpsc::Sender<Inbound<M>>,
) -> Result<(), ConnError> {
    let mut reader = FrameReader::new();
    let hello = tokio::time::timeout(handshake_timeout, reader.next(stream))
        .await
        .map_err(|_| ConnError::Silent(handshake_timeout))??;
    let hello: Hello = wire::decode(&hello).map_err(ConnError::BadHandshake)?;
    if let Err(reason) = hello.check(expect) {
        let _ = write_one(stream, &Reply::Refused(reason.clone())).await;
        return Err(ConnError::Refused(reason));
    }
    write_one(stream, &Reply::Accepted).await?;
    let from = NodeId(hello.from);
    let mut batch = Vec::new();
    loop {
        // Decode every whole frame buffered, then hand them over (awaiting the inbox is the
        // backpressure that slows a fast peer down through TCP's window).
        let decoded = decode_frames::<M>(&reader.buf[reader.start..], &mut batch);
        reader.start += decoded.consumed;
        for (msg, bytes) in batch.drain(..) {
            inbox.send(Inbound { from, msg, bytes }).await.map_err(|_| ConnError::Closed)?;
        }
        match decoded.error {
            Some(FrameError::Frame(e)) => return Err(e.into()),
            Some(FrameError::Message(e)) => return Err(ConnError::BadMessage(from, e)),
            None => reader.refill(stream).await?,
        }
    }
}

/// What went wrong in a stream of frames.
#[derive(Debug)]
pub enum FrameError {
    /// The framing itself (an oversize length prefix).
    Frame(WireError),
    /// A whole frame whose payload is not a message.
    Message(WireError),
}

/// The result of decoding the whole frames at the start of a buffer.
#[derive(Debug)]
pub struct Decoded {
    /// Bytes of the whole, valid frames decoded.
    pub consumed: usize,
    /// Why decoding stopped before the end of the whole frames, if it did.
    pub error: Option<FrameError>,
}

/// Decodes every whole frame at the start of `buf` into `out` as `(message, wire bytes)`,
/// stopping at the first bad frame. This is the inbound path of every connection, and what
/// the `frames` fuzz target exercises.
pub fn decode_frames<M: serde::de::DeserializeOwned>(buf: &[u8], out: &mut Vec<(M, u32)>) -> Decoded {
    let mut consumed = 0;
    loop {
        match wire::read_frame(&buf[consumed..]) {
            Ok(None) => return Decoded { consumed, error: None },
            Err(e) => return Decoded { consumed, error: Some(FrameError::Frame(e)) },
            Ok(Some((payload, used))) => match wire::decode::<M>(payload) {
                Ok(msg) => {
                    out.push((msg, wire::frame_bytes(payload.len()) as u32));
                    consumed += used;
                }
                Err(e) => return Decoded { consumed, error: Some(FrameError::Message(e)) },
            },
        }
    }
}

/// Counters a writer shares with its node.
pub(crate) struct WriterShared {
    /// Frames lost because a connection broke while they were being written.
    pub lost: AtomicU64,
    /// Process-wide count of messages sent but not yet handled (for quiescence).
    pub in_flight: Arc<AtomicI64>,
    /// The node's count of frames queued and not yet written (for idle detection).
    pub unsent: Arc<AtomicI64>,
}

/// The dialing side: connects (with exponential backoff), handshakes, then writes queued
/// frames in batches of up to `max_batch` bytes. Frames queued while disconnected wait.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_outbound(
    me: u32,
    peer: u32,
    addr: SocketAddr,
    hello: Hello,
    mut queue: mpsc::Receiver<Bytes>,
    max_batch: usize,
    shared: Arc<WriterShared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(5);
    let mut batch: Vec<u8> = Vec::with_capacity(max_batch);
    let mut pending: Option<Bytes> = None;
    'connect: loop {
        let connected = tokio::select! {
            r = dial(addr, &hello) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut stream = match connected {
            Ok(s) => s,
            Err(e) => {
                if matches!(e, ConnError::Refused(_)) {
                    warn!("node {me}: peer {peer} at {addr} refused us: {e}");
                } else {
                    debug!(node = me, peer, %addr, "connect failed: {e}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue 'connect;
            }
        };
        backoff = Duration::from_millis(5);
        loop {
            let first = match pending.take() {
                Some(f) => f,
                None => tokio::select! {
                    f = queue.recv() => match f {
                        Some(f) => f,
                        None => return,
                    },
                    _ = stop.wait_for(|s| *s) => return,
                },
            };
            batch.clear();
            batch.extend_from_slice(&first);
            let mut count = 1u64;
            while batch.len() < max_batch {
                match queue.try_recv() {
                    Ok(f) => {
                        batch.extend_from_slice(&f);
                        count += 1;
                    }
                    Err(_) => break,
                }
            }
            let written = stream.write_all(&batch).await;
            shared.unsent.fetch_sub(count as i64, Ordering::AcqRel);
            if let Err(e) = written {
                shared.lost.fetch_add(count, Ordering::Relaxed);
                shared.in_flight.fetch_sub(count as i64, Ordering::AcqRel);
                warn!("node {me}: connection to peer {peer} at {addr} broke, {count} message(s) lost: {e}");
                continue 'connect;
            }
        }
    }
}

async fn dial(addr: SocketAddr, hello: &Hello) -> Result<TcpStream, ConnError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    write_one(&mut stream, hello).await?;
    let mut reader = FrameReader::new();
    let reply = tokio::time::timeout(Duration::from_secs(5), reader.next(&mut stream))
        .await
        .map_err(|_| ConnError::Silent(Duration::from_secs(5)))??;
    match wire::decode::<Reply>(&reply).map_err(ConnError::BadHandshake)? {
        Reply::Accepted => Ok(stream),
        Reply::Refused(why) => Err(ConnError::Refused(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame<T: serde::Serialize>(v: &T, out: &mut Vec<u8>) {
        wire::write_frame(v, out).unwrap();
    }

    #[test]
    fn decodes_whole_frames_and_stops_at_a_partial_one() {
        let mut buf = Vec::new();
        frame(&7u32, &mut buf);
        frame(&300u32, &mut buf);
        let whole = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 9, 1]);
        let mut out: Vec<(u32, u32)> = Vec::new();
        let d = decode_frames(&buf, &mut out);
        assert_eq!(d.consumed, whole);
        assert!(d.error.is_none());
        assert_eq!(out, [(7, 5), (300, 6)]);
    }

    #[test]
    fn a_bad_payload_or_length_stops_decoding_with_the_reason() {
        let mut buf = Vec::new();
        frame(&1u8, &mut buf);
        let good = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 2, 1, 2]);
        let mut out: Vec<(u8, u32)> = Vec::new();
        let d = decode_frames(&buf, &mut out);
        assert_eq!((d.consumed, out.len()), (good, 1));
        assert!(matches!(d.error, Some(FrameError::Message(WireError::Trailing(1)))));
        let d = decode_frames::<u8>(&[0xff; 8], &mut Vec::new());
        assert!(matches!(d.error, Some(FrameError::Frame(WireError::FrameTooLarge { .. }))));
    }
}
