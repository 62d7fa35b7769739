//! One file per wire concern: reading frames from a socket within a memory budget, the inbound
//! (reader) side of a connection with its slots and timeouts, and the outbound (writer) side
//! with reconnect, backoff, batched writes and keepalives.
//!
//! Every failure caused by a peer — garbage, a truncated or oversize frame, a wrong handshake
//! or secret, silence, a frame that does not finish in time — ends that connection with one
//! log line; the node goes on. What a peer can make a node hold is bounded:
//! - **Slots.** A node serves at most one authenticated connection per peer id (a new one
//!   from the same peer replaces the old) and `max_handshaking` strangers still in their
//!   handshake; when those are all taken, the stranger that has waited longest is closed for
//!   the newcomer, so a flood of silent connections cannot keep a real peer out.
//! - **Memory.** A connection reads into a buffer of [`MESSAGE_BUFFER_BYTES`]; a frame larger
//!   than that is read only with bytes taken from the node's budget (`frame_budget_bytes`),
//!   waiting for them while the budget is spent. Handshake frames are at most
//!   [`MAX_HANDSHAKE_FRAME_BYTES`].
//! - **Time.** The handshake must finish within `handshake_timeout`; an authenticated
//!   connection that sends no frame for `idle_timeout` is closed (dialers send a
//!   [`KEEPALIVE`] every third of it); a frame must arrive whole within `frame_timeout` of
//!   its first byte, budget wait included.

use crate::handshake::{self, Expect, Hello, Proof, Reply, Role, Secret, MAX_HANDSHAKE_FRAME_BYTES};
use crate::limits::{Socket, Throttle};
use agora_core::wire::{self, WireError, FRAME_HEADER_BYTES, MAX_FRAME_BYTES};
use agora_core::{Message, NodeId};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

/// The read buffer of an authenticated connection; larger frames borrow from the budget.
pub const MESSAGE_BUFFER_BYTES: usize = 64 * 1024;

/// A length prefix with no payload, sent by an idle dialer so its connection is not timed out
/// and skipped by the reader. It is the largest length, which no frame can have (frames are
/// at most `MAX_FRAME_BYTES`), while an empty payload is a message (a unit struct).
pub const KEEPALIVE: [u8; FRAME_HEADER_BYTES] = [0xff; FRAME_HEADER_BYTES];

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
    #[error("no frame for {0:?} (idle timeout)")]
    Idle(Duration),
    #[error("a frame of {len} bytes did not arrive whole within {within:?} ({got} bytes came)")]
    SlowFrame { len: usize, got: usize, within: Duration },
    #[error("a frame of {0} bytes is more than the node's whole frame budget ({1} bytes)")]
    OverBudget(usize, usize),
    #[error("{0}")]
    Slot(Closing),
}

/// Why a node closed a connection to make room.
#[derive(Clone, Copy, Debug, thiserror::Error)]
pub(crate) enum Closing {
    #[error("closed for a newer stranger (every handshake slot taken)")]
    Evicted,
    #[error("replaced by a newer authenticated connection from the same peer")]
    Replaced,
}

/// The node-wide budget of bytes for frames larger than a connection's own buffer, and the
/// node's count of bytes held in inbound read buffers.
#[derive(Clone)]
pub(crate) struct Budget {
    pub bytes: Arc<Semaphore>,
    pub total: usize,
    pub buffered: Arc<AtomicI64>,
}

/// Buffered frame reader over one socket. Its buffer is `base` bytes, grown for a larger
/// frame only with bytes from the budget (held until the buffer shrinks back).
pub(crate) struct FrameReader {
    /// Bytes `start..end` are read and not yet consumed; `buf.len()` is the buffer's size.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    base: usize,
    max_frame: usize,
    budget: Option<Budget>,
    /// Budget taken for the bytes of `buf` beyond `base`.
    held: Option<OwnedSemaphorePermit>,
    /// Whether a [`KEEPALIVE`] may come (after the handshake).
    keepalives: bool,
}

impl FrameReader {
    /// A reader for frames of at most `max_frame` payload bytes; without a budget, frames
    /// must fit in `base`.
    pub fn new(base: usize, max_frame: usize, budget: Option<Budget>) -> Self {
        assert!(budget.is_some() || FRAME_HEADER_BYTES + max_frame <= base, "no budget to grow into");
        if let Some(b) = &budget {
            b.buffered.fetch_add(base as i64, Ordering::AcqRel);
        }
        FrameReader {
            buf: vec![0; base],
            start: 0,
            end: 0,
            base,
            max_frame,
            budget,
            held: None,
            keepalives: false,
        }
    }

    /// The handshake reader of either side: small frames only.
    pub fn handshake(budget: Option<Budget>) -> Self {
        Self::new(FRAME_HEADER_BYTES + MAX_HANDSHAKE_FRAME_BYTES, MAX_HANDSHAKE_FRAME_BYTES, budget)
    }

    /// A message reader with this reader's unread bytes.
    pub fn for_messages(mut self, budget: Budget) -> Self {
        let mut next = Self::new(MESSAGE_BUFFER_BYTES, MAX_FRAME_BYTES, Some(budget));
        next.keepalives = true;
        let unread = self.end - self.start;
        next.buf[..unread].copy_from_slice(&self.buf[self.start..self.end]);
        next.end = unread;
        self.start = self.end;
        next
    }

    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start);
        self.start += n;
    }

    /// The whole size (header included) of the frame at the front, once its header is in.
    fn front_frame(&self) -> Result<Option<usize>, WireError> {
        let Some(h) = self.unread().get(..FRAME_HEADER_BYTES) else { return Ok(None) };
        if self.keepalives && h == KEEPALIVE {
            return Ok(Some(FRAME_HEADER_BYTES));
        }
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len > self.max_frame {
            return Err(WireError::FrameTooLarge { len, max: self.max_frame });
        }
        Ok(Some(FRAME_HEADER_BYTES + len))
    }

    /// The next whole frame's payload (copied out), reading from `stream` as needed.
    pub async fn next(&mut self, stream: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, ConnError> {
        loop {
            if let Some(size) = self.front_frame()? {
                if self.unread().len() >= size {
                    let out = self.unread()[FRAME_HEADER_BYTES..size].to_vec();
                    self.consume(size);
                    return Ok(out);
                }
            }
            self.fill(stream).await?;
        }
    }

    /// Reads more bytes: moves the unread ones to the front, sizes the buffer for the frame
    /// at the front (waiting for budget if it must grow), then reads once.
    pub async fn fill(&mut self, stream: &mut (impl AsyncRead + Unpin)) -> Result<(), ConnError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let size = self.front_frame()?.unwrap_or(0).max(self.base);
        self.fit(size).await?;
        assert!(self.end < self.buf.len(), "a whole frame is decoded before reading more");
        let n = stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(if self.end == 0 { ConnError::Closed } else { ConnError::Truncated(self.end) });
        }
        self.end += n;
        Ok(())
    }

    /// Grows the buffer to `size` with budget, or gives it back once it is no longer needed.
    async fn fit(&mut self, size: usize) -> Result<(), ConnError> {
        let Some(budget) = &self.budget else { return Ok(()) };
        if size > self.buf.len() {
            if size - self.base > budget.total {
                return Err(ConnError::OverBudget(size, budget.total));
            }
            let more = (size - self.buf.len()) as u32;
            let permit =
                budget.bytes.clone().acquire_many_owned(more).await.map_err(|_| ConnError::Closed)?;
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
            budget.buffered.fetch_add(i64::from(more), Ordering::AcqRel);
            self.buf.reserve_exact(size - self.buf.len());
            self.buf.resize(size, 0);
        } else if size == self.base && self.buf.len() > self.base && self.end <= self.base {
            budget.buffered.fetch_sub((self.buf.len() - self.base) as i64, Ordering::AcqRel);
            self.buf.truncate(self.base);
            self.buf.shrink_to(self.base);
            self.held = None;
        }
        Ok(())
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.buffered.fetch_sub(self.buf.len() as i64, Ordering::AcqRel);
        }
    }
}

async fn write_one<T: serde::Serialize>(stream: &mut TcpStream, value: &T) -> Result<(), ConnError> {
    let mut out = Vec::new();
    wire::write_frame(value, &mut out)?;
    stream.write_all(&out).await?;
    Ok(())
}

/// Which connections hold a node's inbound slots: one per authenticated peer, and a bounded
/// queue of strangers still in their handshake, oldest first. Each entry is the sender that
/// closes its connection.
pub(crate) struct Slots {
    inner: Mutex<SlotsInner>,
    max_strangers: usize,
    evictions: Throttle,
}

struct SlotsInner {
    next_id: u64,
    strangers: VecDeque<(u64, oneshot::Sender<Closing>)>,
    peers: Vec<Option<(u64, oneshot::Sender<Closing>)>>,
}

impl Slots {
    pub fn new(nodes: usize, max_strangers: usize) -> Slots {
        assert!(max_strangers > 0);
        let peers = (0..nodes).map(|_| None).collect();
        Slots {
            inner: Mutex::new(SlotsInner { next_id: 0, strangers: VecDeque::new(), peers }),
            max_strangers,
            evictions: Throttle::new(),
        }
    }

    /// Admits a new connection as a stranger, closing the longest-waiting stranger if every
    /// slot is taken. Returns its id and what tells it to close.
    fn admit(&self, me: u32) -> (u64, oneshot::Receiver<Closing>) {
        let (tx, rx) = oneshot::channel();
        let mut s = self.inner.lock().expect("slots lock");
        let id = s.next_id;
        s.next_id += 1;
        if s.strangers.len() >= self.max_strangers {
            if let Some((_, oldest)) = s.strangers.pop_front() {
                let _ = oldest.send(Closing::Evicted);
                if let Some(n) = self.evictions.hit() {
                    warn!(
                        "node {me}: {n} connection(s) closed before their handshake to make room \
                         ({} handshake slots, all taken)",
                        self.max_strangers
                    );
                }
            }
        }
        s.strangers.push_back((id, tx));
        (id, rx)
    }

    /// Moves connection `id`, now authenticated as `peer`, to that peer's slot, closing the
    /// connection that held it. False if `id` was closed meanwhile.
    fn promote(&self, id: u64, peer: u32) -> bool {
        let mut s = self.inner.lock().expect("slots lock");
        let Some(pos) = s.strangers.iter().position(|(i, _)| *i == id) else { return false };
        let (_, tx) = s.strangers.remove(pos).expect("position just found");
        if let Some((_, old)) = s.peers[peer as usize].replace((id, tx)) {
            let _ = old.send(Closing::Replaced);
        }
        true
    }

    fn leave(&self, id: u64) {
        let mut s = self.inner.lock().expect("slots lock");
        s.strangers.retain(|(i, _)| *i != id);
        for p in s.peers.iter_mut() {
            if p.as_ref().is_some_and(|(i, _)| *i == id) {
                *p = None;
            }
        }
    }
}

/// What every inbound connection of a node shares.
pub(crate) struct InboundCtx<M> {
    pub expect: Expect,
    pub secret: Secret,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub frame_timeout: Duration,
    pub budget: Budget,
    pub slots: Slots,
    pub inbox: mpsc::Sender<Inbound<M>>,
    pub stop: watch::Receiver<bool>,
}

/// The accepting side of a connection: handshake, then messages into the node's inbox until
/// the peer goes away, misbehaves, is replaced, or the node stops.
pub(crate) async fn serve_inbound<M: Message>(
    mut stream: TcpStream,
    addr: SocketAddr,
    ctx: Arc<InboundCtx<M>>,
    socket: Socket,
) {
    let me = ctx.expect.me;
    let (id, mut close) = ctx.slots.admit(me);
    let mut stop = ctx.stop.clone();
    let result = tokio::select! {
        r = inbound(&mut stream, id, &ctx) => r,
        _ = stop.wait_for(|s| *s) => Ok(()),
        why = &mut close => why.map_or(Ok(()), |why| Err(ConnError::Slot(why))),
    };
    ctx.slots.leave(id);
    drop(stream);
    drop(socket);
    match result {
        Ok(()) | Err(ConnError::Closed) => debug!(node = me, %addr, "inbound connection closed"),
        Err(e @ ConnError::Slot(Closing::Evicted)) => debug!(node = me, %addr, "{e}"),
        Err(e) => warn!("node {me}: closing connection from {addr}: {e}"),
    }
}

async fn inbound<M: Message>(stream: &mut TcpStream, id: u64, ctx: &InboundCtx<M>) -> Result<(), ConnError> {
    let mut reader = FrameReader::handshake(Some(ctx.budget.clone()));
    let from = tokio::time::timeout(ctx.handshake_timeout, accept(stream, &mut reader, id, ctx))
        .await
        .map_err(|_| ConnError::Silent(ctx.handshake_timeout))??;
    receive(stream, reader.for_messages(ctx.budget.clone()), from, ctx).await
}

/// The acceptor's side of the handshake (see `handshake`): the peer it authenticated.
async fn accept<M>(
    stream: &mut TcpStream,
    reader: &mut FrameReader,
    id: u64,
    ctx: &InboundCtx<M>,
) -> Result<NodeId, ConnError> {
    let hello: Hello = wire::decode(&reader.next(stream).await?).map_err(ConnError::BadHandshake)?;
    if let Err(reason) = hello.check(&ctx.expect) {
        return refuse(stream, reason).await;
    }
    let challenge = handshake::os_random();
    write_one(stream, &Reply::Challenge(challenge)).await?;
    let Proof(claimed) = wire::decode(&reader.next(stream).await?).map_err(ConnError::BadHandshake)?;
    if !handshake::verify(&ctx.secret, Role::Dialer, &hello, &challenge, &claimed) {
        return refuse(stream, format!("node {} did not prove it holds the cluster secret", hello.from))
            .await;
    }
    if !ctx.slots.promote(id, hello.from) {
        return Err(ConnError::Slot(Closing::Evicted));
    }
    let mac = handshake::mac(&ctx.secret, Role::Acceptor, &hello, &challenge);
    let idle_timeout_ms = ctx.idle_timeout.as_millis() as u64;
    write_one(stream, &Reply::Accepted { mac, idle_timeout_ms }).await?;
    Ok(NodeId(hello.from))
}

async fn refuse<T>(stream: &mut TcpStream, reason: String) -> Result<T, ConnError> {
    let _ = write_one(stream, &Reply::Refused(reason.clone())).await;
    Err(ConnError::Refused(reason))
}

/// Frames from an authenticated peer into the inbox, within the idle and frame timeouts.
async fn receive<M: Message>(
    stream: &mut TcpStream,
    mut reader: FrameReader,
    from: NodeId,
    ctx: &InboundCtx<M>,
) -> Result<(), ConnError> {
    let mut batch = Vec::new();
    let mut last_frame = Instant::now();
    let mut partial_since: Option<Instant> = None;
    loop {
        // Decode every whole frame buffered, then hand them over (awaiting the inbox is the
        // backpressure that slows a fast peer down through TCP's window).
        let decoded = decode_frames::<M>(reader.unread(), &mut batch);
        reader.consume(decoded.consumed);
        for (msg, bytes) in batch.drain(..) {
            ctx.inbox.send(Inbound { from, msg, bytes }).await.map_err(|_| ConnError::Closed)?;
        }
        match decoded.error {
            Some(FrameError::Frame(e)) => return Err(e.into()),
            Some(FrameError::Message(e)) => return Err(ConnError::BadMessage(from, e)),
            None => {}
        }
        // Time spent waiting for our own inbox is not the peer's.
        let now = Instant::now();
        if decoded.consumed > 0 {
            last_frame = now;
            partial_since = None;
        }
        let deadline = if reader.unread().is_empty() {
            partial_since = None;
            last_frame + ctx.idle_timeout
        } else {
            *partial_since.get_or_insert(now) + ctx.frame_timeout
        };
        match tokio::time::timeout_at(deadline.into(), reader.fill(stream)).await {
            Ok(filled) => filled?,
            Err(_) if reader.unread().is_empty() => return Err(ConnError::Idle(ctx.idle_timeout)),
            Err(_) => {
                let len = reader.front_frame()?.unwrap_or(0);
                let got = reader.unread().len();
                return Err(ConnError::SlowFrame { len, got, within: ctx.frame_timeout });
            }
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
    /// Bytes of the whole, valid frames decoded (keepalives included).
    pub consumed: usize,
    /// Keepalive frames (no payload) skipped.
    pub keepalives: usize,
    /// Why decoding stopped before the end of the whole frames, if it did.
    pub error: Option<FrameError>,
}

/// Decodes every whole frame at the start of `buf` into `out` as `(message, wire bytes)`,
/// skipping keepalives and stopping at the first bad frame. This is the inbound path of
/// every connection, and what the `frames` fuzz target exercises.
pub fn decode_frames<M: serde::de::DeserializeOwned>(buf: &[u8], out: &mut Vec<(M, u32)>) -> Decoded {
    let (mut consumed, mut keepalives) = (0, 0);
    loop {
        if buf[consumed..].starts_with(&KEEPALIVE) {
            keepalives += 1;
            consumed += KEEPALIVE.len();
            continue;
        }
        let error = match wire::read_frame(&buf[consumed..]) {
            Ok(None) => None,
            Err(e) => Some(FrameError::Frame(e)),
            Ok(Some((payload, used))) => match wire::decode::<M>(payload) {
                Ok(msg) => {
                    out.push((msg, wire::frame_bytes(payload.len()) as u32));
                    consumed += used;
                    continue;
                }
                Err(e) => Some(FrameError::Message(e)),
            },
        };
        return Decoded { consumed, keepalives, error };
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

/// Where and as whom a writer dials.
pub(crate) struct Dial {
    pub me: u32,
    pub peer: u32,
    pub addr: SocketAddr,
    /// The name `addr` was resolved from, resolved again at every dial.
    pub name: Option<String>,
    pub cluster: String,
    pub protocol: &'static str,
    pub secret: Secret,
}

/// The dialing side: connects (with exponential backoff), handshakes, then writes queued
/// frames in batches of up to `max_batch` bytes, and a keepalive when it has had nothing to
/// write for a third of the acceptor's idle timeout. Frames queued while disconnected wait.
/// The acceptor never writes after accepting, so a readable socket means it closed the
/// connection: the writer reconnects at once.
pub(crate) async fn serve_outbound(
    dial: Dial,
    queue: mpsc::Receiver<Bytes>,
    max_batch: usize,
    shared: Arc<WriterShared>,
    stop: watch::Receiver<bool>,
) {
    // The batch grows with what the link carries, up to about `max_batch`: most links of a
    // large cluster carry little (a 68-peer market has 4,556 links, most of them idle),
    // and a buffer of `max_batch` for each was 4,556 × 64 KiB of heap taken as it opened.
    let mut out = Outbound { dial, queue, max_batch, batch: Vec::new(), shared, stop };
    loop {
        let Some((mut stream, idle_timeout, _socket)) = out.connect().await else {
            return;
        };
        if let Session::Stopped = out.session(&mut stream, idle_timeout).await {
            return;
        }
    }
}

/// How a connection's session ended.
enum Session {
    /// The connection broke or the acceptor closed it: dial again.
    Broken,
    /// The node stopped or dropped the queue: the writer ends.
    Stopped,
}

/// A writer's state that outlives its connections.
struct Outbound {
    dial: Dial,
    queue: mpsc::Receiver<Bytes>,
    max_batch: usize,
    /// The frames of one write, reused.
    batch: Vec<u8>,
    shared: Arc<WriterShared>,
    stop: watch::Receiver<bool>,
}

impl Outbound {
    /// Dials until a handshake succeeds, waiting 5 ms after the first failure and twice as
    /// long after each next one (at most a second); `None` once the node stops.
    async fn connect(&mut self) -> Option<(TcpStream, Duration, Socket)> {
        let (me, peer, addr) = (self.dial.me, self.dial.peer, self.dial.addr);
        let mut backoff = Duration::from_millis(5);
        loop {
            let connected = tokio::select! {
                r = connect(&self.dial) => r,
                _ = self.stop.wait_for(|s| *s) => return None,
            };
            match connected {
                Ok(c) => return Some(c),
                Err(e) => {
                    if matches!(e, ConnError::Refused(_)) {
                        warn!("node {me}: peer {peer} at {addr} refused us: {e}");
                    } else {
                        debug!(node = me, peer, %addr, "connect failed: {e}");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.wait_for(|s| *s) => return None,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Writes batches of queued frames, and keepalives when idle, until the connection breaks
    /// or the node stops.
    async fn session(&mut self, stream: &mut TcpStream, idle_timeout: Duration) -> Session {
        let (me, peer, addr) = (self.dial.me, self.dial.peer, self.dial.addr);
        let keepalive_every = (idle_timeout / 3).max(Duration::from_millis(1));
        let mut last_write = Instant::now();
        loop {
            let first = tokio::select! {
                f = self.queue.recv() => match f {
                    Some(f) => f,
                    None => return Session::Stopped,
                },
                _ = tokio::time::sleep_until((last_write + keepalive_every).into()) => {
                    if let Err(e) = stream.write_all(&KEEPALIVE).await {
                        debug!(node = me, peer, %addr, "keepalive failed: {e}");
                        return Session::Broken;
                    }
                    last_write = Instant::now();
                    continue;
                }
                _ = stream.readable() => {
                    match stream.try_read(&mut [0u8; 64]) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Ok(0) => debug!(node = me, peer, %addr, "peer closed the connection"),
                        Ok(_) => warn!("node {me}: peer {peer} at {addr} wrote after its handshake"),
                        Err(e) => debug!(node = me, peer, %addr, "connection broke: {e}"),
                    }
                    return Session::Broken;
                }
                _ = stopped(&mut self.stop) => return Session::Stopped,
            };
            let count = self.fill_batch(&first);
            let written = stream.write_all(&self.batch).await;
            self.shared.unsent.fetch_sub(count as i64, Ordering::AcqRel);
            last_write = Instant::now();
            if let Err(e) = written {
                self.shared.lost.fetch_add(count, Ordering::Relaxed);
                self.shared.in_flight.fetch_sub(count as i64, Ordering::AcqRel);
                warn!("node {me}: connection to peer {peer} at {addr} broke, {count} message(s) lost: {e}");
                return Session::Broken;
            }
        }
    }

    /// Puts `first` and the frames already queued behind it into the batch, until it holds
    /// `max_batch` bytes or more; returns how many frames it holds.
    fn fill_batch(&mut self, first: &[u8]) -> u64 {
        self.batch.clear();
        self.batch.extend_from_slice(first);
        let mut count = 1u64;
        while self.batch.len() < self.max_batch {
            match self.queue.try_recv() {
                Ok(f) => {
                    self.batch.extend_from_slice(&f);
                    count += 1;
                }
                Err(_) => break,
            }
        }
        count
    }
}

/// A link's modelled latency: passes each frame of `from` on to `to` `delay` after it came,
/// in the order they came, holding at most `capacity` frames (then the node's queue fills and
/// drops, as it would for a slow connection). Frames held count as unsent, so a node is not
/// idle while its messages are on their way. Ends once `from` is closed and emptied, or `to`
/// is gone.
pub(crate) async fn delay_frames(
    mut from: mpsc::Receiver<Bytes>,
    to: mpsc::Sender<Bytes>,
    delay: Duration,
    capacity: usize,
) {
    let mut held: VecDeque<(Instant, Bytes)> = VecDeque::new();
    let mut open = true;
    while open || !held.is_empty() {
        let due = held.front().map(|(at, _)| *at);
        tokio::select! {
            f = from.recv(), if open && held.len() < capacity => match f {
                Some(f) => held.push_back((Instant::now() + delay, f)),
                None => open = false,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                let (_, f) = held.pop_front().expect("a frame is due");
                if to.send(f).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Resolves once the node stops (without holding the watch's lock across a later await).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Where to dial a peer now: a peer given by name is looked up again (its host may have come
/// back elsewhere), and `addr`, where it was found before, is the fallback; none when the
/// name does not resolve and never did (`addr` unspecified, which would dial this host).
pub(crate) async fn peer_addr(addr: SocketAddr, name: Option<&str>) -> Option<SocketAddr> {
    let fresh = match name {
        Some(name) => tokio::net::lookup_host(name).await.ok().and_then(|mut a| a.next()),
        None => None,
    };
    Some(fresh.unwrap_or(addr)).filter(|a| !a.ip().is_unspecified())
}

/// Dials and runs the dialer's side of the handshake: the stream and the acceptor's idle
/// timeout.
async fn connect(dial: &Dial) -> Result<(TcpStream, Duration, Socket), ConnError> {
    // The handshake, not the address, proves who answers.
    let Some(addr) = peer_addr(dial.addr, dial.name.as_deref()).await else {
        let name = dial.name.as_deref().unwrap_or("?");
        let why = format!("{name} does not resolve yet");
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, why).into());
    };
    let mut stream = TcpStream::connect(addr).await?;
    let socket = Socket::outbound();
    stream.set_nodelay(true)?;
    let hello = Hello::new(&dial.cluster, dial.protocol, dial.me, dial.peer);
    let limit = Duration::from_secs(5);
    let idle = tokio::time::timeout(limit, async {
        write_one(&mut stream, &hello).await?;
        let mut reader = FrameReader::handshake(None);
        let challenge = match reply(&mut reader, &mut stream).await? {
            Reply::Challenge(c) => c,
            other => return Err(unexpected(other)),
        };
        write_one(&mut stream, &Proof(handshake::mac(&dial.secret, Role::Dialer, &hello, &challenge)))
            .await?;
        match reply(&mut reader, &mut stream).await? {
            Reply::Accepted { mac, idle_timeout_ms } => {
                if !handshake::verify(&dial.secret, Role::Acceptor, &hello, &challenge, &mac) {
                    return Err(ConnError::Refused(
                        "the peer did not prove it holds the cluster secret".into(),
                    ));
                }
                Ok(Duration::from_millis(idle_timeout_ms.max(1)))
            }
            other => Err(unexpected(other)),
        }
    })
    .await
    .map_err(|_| ConnError::Silent(limit))??;
    Ok((stream, idle, socket))
}

async fn reply(reader: &mut FrameReader, stream: &mut TcpStream) -> Result<Reply, ConnError> {
    wire::decode::<Reply>(&reader.next(stream).await?).map_err(ConnError::BadHandshake)
}

fn unexpected(r: Reply) -> ConnError {
    match r {
        Reply::Refused(why) => ConnError::Refused(why),
        other => ConnError::Refused(format!("unexpected handshake reply {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame<T: serde::Serialize>(v: &T, out: &mut Vec<u8>) {
        wire::write_frame(v, out).unwrap();
    }

    #[test]
    fn decodes_whole_frames_skips_keepalives_and_stops_at_a_partial_one() {
        let mut buf = Vec::new();
        frame(&7u32, &mut buf);
        buf.extend_from_slice(&KEEPALIVE);
        frame(&300u32, &mut buf);
        let whole = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 9, 1]);
        let mut out: Vec<(u32, u32)> = Vec::new();
        let d = decode_frames(&buf, &mut out);
        assert_eq!((d.consumed, d.keepalives), (whole, 1));
        assert!(d.error.is_none());
        assert_eq!(out, [(7, 5), (300, 6)]);
        // An empty payload is a message (a unit struct), not a keepalive.
        let mut units: Vec<((), u32)> = Vec::new();
        assert_eq!(decode_frames(&[0, 0, 0, 0], &mut units).consumed, 4);
        assert_eq!(units, [((), 4)]);
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
        let d = decode_frames::<u8>(&[0xff, 0xff, 0xff, 0xfe, 0], &mut Vec::new());
        assert!(matches!(d.error, Some(FrameError::Frame(WireError::FrameTooLarge { .. }))));
    }

    #[tokio::test]
    async fn a_delayed_link_passes_every_frame_on_in_order_no_sooner_than_its_delay() {
        let delay = Duration::from_millis(40);
        let (tx, rx) = mpsc::channel(16);
        let (out_tx, mut out) = mpsc::channel(16);
        tokio::spawn(delay_frames(rx, out_tx, delay, 2));
        let mut queued = Vec::new();
        for i in 0..5u8 {
            queued.push(Instant::now());
            tx.send(Bytes::from(vec![i])).await.unwrap();
        }
        drop(tx);
        for (i, at) in queued.iter().enumerate() {
            let f = out.recv().await.expect("every frame comes out, the queue closed or not");
            assert_eq!(f[..], [i as u8]);
            // A lower bound only: frame i was queued at or after `at`.
            assert!(at.elapsed() >= delay, "frame {i} came out {:?} after it was queued", at.elapsed());
        }
        assert!(out.recv().await.is_none(), "the link ends once its queue is closed and empty");
    }

    fn budget(total: usize) -> Budget {
        Budget { bytes: Arc::new(Semaphore::new(total)), total, buffered: Arc::new(AtomicI64::new(0)) }
    }

    #[tokio::test]
    async fn a_large_frame_is_read_with_budget_which_is_given_back_after() {
        let b = budget(1 << 20);
        let mut reader = FrameReader::new(MESSAGE_BUFFER_BYTES, MAX_FRAME_BYTES, Some(b.clone()));
        let big = vec![7u8; 300_000];
        let mut bytes = Vec::new();
        frame(&big, &mut bytes);
        frame(&1u8, &mut bytes);
        let mut stream = &bytes[..];
        assert_eq!(wire::decode::<Vec<u8>>(&reader.next(&mut stream).await.unwrap()).unwrap(), big);
        let size = wire::encoded_len(&big) + FRAME_HEADER_BYTES;
        assert_eq!(b.buffered.load(Ordering::Acquire) as usize, size);
        assert_eq!(b.bytes.available_permits(), (1 << 20) - (size - MESSAGE_BUFFER_BYTES));
        assert_eq!(reader.next(&mut stream).await.unwrap(), [1]);
        // The next read finds a small frame at the front and shrinks the buffer back.
        assert!(matches!(reader.next(&mut stream).await, Err(ConnError::Closed)));
        assert_eq!(b.buffered.load(Ordering::Acquire) as usize, MESSAGE_BUFFER_BYTES);
        assert_eq!(b.bytes.available_permits(), 1 << 20);
        drop(reader);
        assert_eq!(b.buffered.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_whole_budget_or_the_maximum_is_refused_unread() {
        let b = budget(100_000);
        let mut reader = FrameReader::new(MESSAGE_BUFFER_BYTES, MAX_FRAME_BYTES, Some(b));
        let mut stream: &[u8] = &1_000_000u32.to_be_bytes();
        assert!(matches!(reader.next(&mut stream).await, Err(ConnError::OverBudget(1_000_004, 100_000))));
        let mut reader = FrameReader::handshake(None);
        let mut stream: &[u8] = &2_000u32.to_be_bytes();
        assert!(matches!(
            reader.next(&mut stream).await,
            Err(ConnError::Wire(WireError::FrameTooLarge { .. }))
        ));
    }
}
