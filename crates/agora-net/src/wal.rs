//! A node's write-ahead log: the batches of writes it made durable since its database last
//! took them, appended to one file.
//!
//! **Why.** A redb commit writes anew every page on the way to what changed, and the pages of
//! its own bookkeeping: about six 4 KiB pages and a header, scattered over the file, for one
//! small Raft entry. Five replicas sharing a disk took 0.4 ms a commit so (against 0.15 ms for
//! one page each), and a replica commits about once every buy and a half of the trading post's
//! experiment (docs/benchmarks.md, "where a buy's time goes"). Appending the batch to a log
//! writes one or two pages.
//!
//! **The file.** A header — [`MAGIC`] and the log's generation — then records, each the
//! length of its batch, a check of that length, the first 8 bytes of the batch's BLAKE3 hash,
//! and the batch.
//!
//! **Checkpoints** (`crate::store`). Once the log holds [`CHECKPOINT_BYTES`], it is renamed
//! `node-N.wal-prev`, a new log of the next generation takes its place, and a thread puts the
//! old log's batches in the database in one transaction that also records the new log's
//! generation (the `wal` key of the database's `meta` table), then removes the old log; the
//! node writes to the new log meanwhile. On opening, the database is read, then an old log
//! still there (a checkpoint cut off: put in the database now if the database does not yet
//! name the new generation), then the current log. A log missing while the database names
//! one, or of a generation the database does not name, is corruption.
//!
//! **Room ahead.** The file is kept [`ROOM`] bytes longer than its records, allocated ahead
//! (`fallocate`) and reading as zeros, so an append writes inside the file rather than
//! growing it: a synced append to a growing file must also sync the file's new size, a
//! journal write each time (writing into allocated space still journals the first write into
//! each block, once a block rather than once a record). The zeros after the last record are
//! not a record (a zero length fails its check) and are kept as room.
//!
//! **A crash mid-append.** Records are appended one at a time, each synced before the next is
//! written, so only the last one can be cut off, and it was never acknowledged: a record that
//! is not whole and sound (a prefix of it, its pages written out of order, space allocated and
//! never written), with no sound record after it, ends the log. A damaged record followed by
//! a sound one is corruption: the node refuses to start. A damaged last record cannot be told
//! from one cut off: what follows the last sound record is cut away with a warning naming
//! the bytes, unless it is all zeros — then it is kept as room, with a warning if room had
//! been made for records beyond it (their append was cut off before it wrote a byte). A log is made whole
//! under another name (`.new`) and then renamed, so a crash never leaves one without its
//! header.

use crate::store::Write;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use tracing::warn;

/// What a log file starts with.
const MAGIC: &[u8; 4] = b"AGW1";
/// The magic and the generation.
const HEADER: u64 = 12;
/// A record's length, the check of its length and its hash.
const RECORD_HEADER: usize = 16;
/// The log is checkpointed into the database once it holds this many bytes.
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;
/// Bytes of zeros the file holds after its last record, grown again once an append reaches
/// them (see the module docs).
const ROOM: u64 = 1 << 20;
/// A batch bigger than this is not one a node wrote: corruption.
const MAX_RECORD: u32 = 1 << 30;

/// Why a log cannot be read.
#[derive(Debug)]
pub(crate) enum WalError {
    Io(std::io::Error),
    Corrupt(String),
}

impl From<std::io::Error> for WalError {
    fn from(e: std::io::Error) -> Self {
        WalError::Io(e)
    }
}

/// An open log, positioned at its end.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    generation: u64,
    /// Where the records end.
    len: u64,
    /// The file's size: `len` and the room after it.
    size: u64,
    /// A record being encoded (kept to reuse its allocation).
    buf: Vec<u8>,
}

/// The check of a record's length: a flipped bit in either is seen.
fn length_check(len: u32) -> u32 {
    !len.rotate_left(13) ^ 0x5A17_C0DE
}

fn hash8(bytes: &[u8]) -> [u8; 8] {
    blake3::hash(bytes).as_bytes()[..8].try_into().expect("8 bytes")
}

/// Syncs the directory holding `path`, so that a file created, renamed or removed there
/// stays so.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Where a log is made before it takes its name: a crash never leaves a log without its header.
pub(crate) fn new_file(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// A log file bigger than this is not one a node wrote (it checkpoints at 8 MiB; one batch
/// can be larger, up to [`MAX_RECORD`]): corruption, not a gigabytes-long read.
const MAX_FILE: u64 = 2 * MAX_RECORD as u64;

impl Wal {
    /// Creates the log at `path` (replacing any), empty, of `generation`; durable, with its
    /// directory entry. It is made whole under another name first, so that a crash leaves
    /// either no log or one with its header.
    pub(crate) fn create(path: &Path, generation: u64) -> std::io::Result<Wal> {
        let new = new_file(path);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&new)?;
        let mut wal = Wal { file, path: path.to_path_buf(), generation, len: 0, size: 0, buf: Vec::new() };
        wal.restart(generation)?;
        std::fs::rename(&new, path)?;
        sync_dir(path)?;
        Ok(wal)
    }

    /// Opens the log at `path` and reads its batches, cutting away a last record a crash cut
    /// off (see the module docs).
    pub(crate) fn open(path: &Path) -> Result<(Wal, Vec<Vec<Write>>), WalError> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let size = file.metadata()?.len();
        if size > MAX_FILE {
            return Err(WalError::Corrupt(format!("{size} bytes, more than any log a node writes")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)?;
        if bytes.len() < HEADER as usize || &bytes[..4] != MAGIC {
            return Err(WalError::Corrupt("not a write-ahead log (bad header)".into()));
        }
        let generation = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
        let (batches, end) = records(&bytes)?;
        let mut size = size;
        if zeros(&bytes[end..]) {
            if size.saturating_sub(ROOM) > end as u64 {
                warn!(
                    log = %path.display(),
                    at = end,
                    "the write-ahead log ends {} bytes before the end of the last record room was \
                     made for: a write a crash cut off before it reached the disk",
                    size - ROOM - end as u64
                );
            }
        } else {
            warn!(
                log = %path.display(),
                at = end,
                "cutting away the last {} bytes of the write-ahead log: a write a crash cut off",
                bytes.len() - end
            );
            file.set_len(end as u64)?;
            file.sync_data()?;
            size = end as u64;
        }
        file.seek(SeekFrom::Start(end as u64))?;
        let wal = Wal { file, path: path.to_path_buf(), generation, len: end as u64, size, buf: Vec::new() };
        Ok((wal, batches))
    }

    /// The log's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes of its records (and header): where the next one goes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `writes` as one record and syncs it.
    pub(crate) fn append(&mut self, writes: &[Write]) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(&[0; RECORD_HEADER]);
        encode(writes, &mut buf);
        let len = u32::try_from(buf.len() - RECORD_HEADER)
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| std::io::Error::other("a batch of writes too big for one record"))?;
        let hash = hash8(&buf[RECORD_HEADER..]);
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..8].copy_from_slice(&length_check(len).to_le_bytes());
        buf[8..16].copy_from_slice(&hash);
        let end = self.len + buf.len() as u64;
        let written =
            self.grow(end).and_then(|()| self.file.write_all(&buf)).and_then(|()| self.file.sync_data());
        if written.is_err() {
            // Whatever part of it reached the file is cut away, or the next record would
            // follow a damaged one; if that fails too, the node stops on this error anyway.
            let _ = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
            self.size = self.len;
        } else {
            self.len = end;
        }
        self.buf = buf;
        written
    }

    /// Makes the file at least `end` bytes long, with [`ROOM`] to spare, if it is shorter.
    fn grow(&mut self, end: u64) -> std::io::Result<()> {
        if end <= self.size {
            return Ok(());
        }
        // Short of room on the disk, the record alone still goes in if it fits.
        let to = match allocate(&self.file, self.size, end + ROOM) {
            Ok(()) => end + ROOM,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                allocate(&self.file, self.size, end)?;
                end
            }
            Err(e) => return Err(e),
        };
        self.size = to;
        Ok(())
    }

    /// Empties the log and gives it `generation`; durable.
    fn restart(&mut self, generation: u64) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.size = 0;
        self.file.seek(SeekFrom::Start(0))?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&generation.to_le_bytes());
        self.grow(HEADER)?;
        self.file.write_all(&header)?;
        self.file.sync_data()?;
        self.generation = generation;
        self.len = HEADER;
        Ok(())
    }

    /// Every batch in the file, read again (for a checkpoint).
    pub(crate) fn batches(&self) -> Result<Vec<Vec<Write>>, WalError> {
        let mut bytes = Vec::with_capacity(self.len as usize);
        (&self.file).seek(SeekFrom::Start(0))?;
        (&self.file).take(self.len).read_to_end(&mut bytes)?;
        (&self.file).seek(SeekFrom::Start(self.len))?;
        let (batches, end) = records(&bytes)?;
        if end != bytes.len() {
            return Err(WalError::Corrupt(format!("a record at byte {end} no longer reads back")));
        }
        Ok(batches)
    }
}

/// Makes `file` `to` bytes long, the bytes from `from` on allocated on the disk and reading as
/// zeros: writing them later changes no size and takes no new blocks. Where the file system
/// cannot allocate ahead (or the call is not allowed), a hole does: zeros, the blocks taken
/// when written.
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
fn allocate(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(from), libc::off_t::try_from(to - from)) else {
            return Err(std::io::Error::other("a log larger than a file offset"));
        };
        loop {
            // SAFETY: fallocate(2) on the descriptor `file` owns and keeps open for the call.
            if unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EPERM) => break,
                _ => return Err(e),
            }
        }
    }
    file.set_len(to)
}

/// Whether `bytes` are all zeros: the room after a log's last record.
fn zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// The record at the start of `rest`, if a whole, sound one is: its batch and length.
fn record(rest: &[u8]) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let check = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?);
    if check != length_check(len) || len > MAX_RECORD {
        return None;
    }
    let end = RECORD_HEADER + len as usize;
    let payload = rest.get(RECORD_HEADER..end)?;
    (rest[8..16] == hash8(payload)).then_some((payload, end))
}

/// The batches of a log file's bytes, and where the last whole record ends.
///
/// A record that is not whole and sound ends the log if nothing sound follows it: the record
/// a crash cut off while it was being written (a prefix of it, its pages written out of order,
/// or space allocated and never written), which was never acknowledged. If a sound record
/// follows it, it was acknowledged and is damaged: corruption. (A damaged last record cannot
/// be told from one cut off, and is cut away too, with a warning.)
fn records(bytes: &[u8]) -> Result<(Vec<Vec<Write>>, usize), WalError> {
    let mut at = HEADER as usize;
    let mut batches = Vec::new();
    while at < bytes.len() {
        let Some((payload, len)) = record(&bytes[at..]) else {
            if !zeros(&bytes[at..]) && (at + 1..bytes.len()).any(|q| record(&bytes[q..]).is_some()) {
                return Err(WalError::Corrupt(format!(
                    "the record at byte {at} is damaged, and sound records follow it"
                )));
            }
            break;
        };
        let batch = decode(payload)
            .ok_or_else(|| WalError::Corrupt(format!("the record at byte {at} does not decode")))?;
        batches.push(batch);
        at += len;
    }
    Ok((batches, at))
}

const PUT: u8 = 0;
const REMOVE: u8 = 1;
const REMOVE_RANGE: u8 = 2;
const LANDED: u8 = 3;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// A batch as bytes: per write, its kind, then its key (length first) and its value.
fn encode(writes: &[Write], out: &mut Vec<u8>) {
    for w in writes {
        match w {
            Write::Put(k, v) => {
                out.push(PUT);
                put_bytes(out, k.as_bytes());
                put_bytes(out, v);
            }
            Write::Remove(k) => {
                out.push(REMOVE);
                put_bytes(out, k.as_bytes());
            }
            Write::RemoveRange(a, b) => {
                out.push(REMOVE_RANGE);
                put_bytes(out, a.as_bytes());
                put_bytes(out, b.as_bytes());
            }
            Write::Landed(k, h) => {
                out.push(LANDED);
                put_bytes(out, k.as_bytes());
                out.extend_from_slice(h);
            }
        }
    }
}

/// The batch `encode` made of `bytes`, or `None` if they are not one.
fn decode(mut bytes: &[u8]) -> Option<Vec<Write>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = tail;
        Some(head)
    }
    fn field<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?) as usize;
        take(bytes, n)
    }
    fn string(bytes: &mut &[u8]) -> Option<String> {
        String::from_utf8(field(bytes)?.to_vec()).ok()
    }
    let mut writes = Vec::new();
    while let Some(&kind) = bytes.first() {
        bytes = &bytes[1..];
        writes.push(match kind {
            PUT => Write::Put(string(&mut bytes)?, field(&mut bytes)?.to_vec()),
            REMOVE => Write::Remove(string(&mut bytes)?),
            REMOVE_RANGE => Write::RemoveRange(string(&mut bytes)?, string(&mut bytes)?),
            LANDED => Write::Landed(string(&mut bytes)?, take(&mut bytes, 32)?.try_into().ok()?),
            _ => return None,
        });
    }
    Some(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(i: u8) -> Vec<Write> {
        vec![
            Write::Put(format!("log/{i}"), vec![i; 10 + i as usize]),
            Write::Remove(format!("old/{i}")),
            Write::RemoveRange("a".into(), "b".into()),
            Write::Landed(format!("snap/{i}"), [i; 32]),
        ]
    }

    fn written(n: u8) -> (tempfile::TempDir, PathBuf, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-0.wal");
        let mut wal = Wal::create(&path, 7).unwrap();
        let mut ends = vec![wal.len()];
        for i in 0..n {
            wal.append(&batch(i)).unwrap();
            ends.push(wal.len());
        }
        (dir, path, ends)
    }

    fn corrupt(r: Result<(Wal, Vec<Vec<Write>>), WalError>) -> String {
        match r {
            Err(WalError::Corrupt(why)) => why,
            Err(WalError::Io(e)) => panic!("expected corruption, got {e}"),
            Ok((_, b)) => panic!("expected corruption, read {} batches", b.len()),
        }
    }

    #[test]
    fn batches_read_back_in_order_with_their_generation() {
        let (_dir, path, ends) = written(3);
        let (mut wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, (0..3).map(batch).collect::<Vec<_>>());
        assert_eq!((wal.generation(), wal.len()), (7, ends[3]));
        assert_eq!(wal.batches().unwrap(), batches, "read again for a checkpoint");
        wal.append(&batch(3)).unwrap();
        drop(wal);
        let (mut wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches.len(), 4, "appends after reopening follow the others");
        wal.restart(8).unwrap();
        drop(wal);
        let (wal, batches) = Wal::open(&path).unwrap();
        assert_eq!((wal.generation(), batches.len(), wal.len()), (8, 0, HEADER));
    }

    /// Whatever a crash leaves of the last record — part of its header, part of its batch,
    /// its whole length with zeros after, its header's page never written — is cut away, and
    /// the records before it are kept; zeros after the last whole record are kept as room.
    #[test]
    fn a_last_record_cut_off_is_cut_away() {
        let (_dir, path, ends) = written(3);
        let whole = std::fs::read(&path).unwrap();
        let (last, end) = (ends[2] as usize, ends[3] as usize);
        // Its header's page never written, the rest of it written.
        let mut out_of_order = whole.clone();
        out_of_order[last..last + RECORD_HEADER].fill(0);
        let cut_offs: Vec<Vec<u8>> = vec![
            whole[..last + 5].to_vec(),
            whole[..end - 1].to_vec(),
            [&whole[..end - 8], &[0u8; 8][..]].concat(),
            [&whole[..], &[0u8; 100][..]].concat(),
            out_of_order,
        ];
        for (i, bytes) in cut_offs.iter().enumerate() {
            std::fs::write(&path, bytes).unwrap();
            let (wal, batches) = Wal::open(&path).unwrap();
            let kept = if i == 3 { 3 } else { 2 };
            assert_eq!(batches, (0..kept).map(batch).collect::<Vec<_>>(), "cut-off {i}");
            assert_eq!(wal.len(), ends[kept as usize], "cut-off {i}");
            // Zeros after the records are room, kept; anything else after them is cut away.
            let size = if i == 3 { bytes.len() as u64 } else { ends[2] };
            assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "cut-off {i} cut away");
        }
        assert!(!new_file(&path).exists(), "no file left under the name a log is made with");
    }

    /// A crash in the middle of an append leaves part of a record with the room's zeros after
    /// it: that part is cut away with the room, and the next append makes room again.
    #[test]
    fn a_record_cut_off_before_the_room_is_cut_away_and_room_made_again() {
        let (_dir, path, ends) = written(3);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, HEADER + ROOM);
        bytes[ends[2] as usize + 5..ends[3] as usize].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let (mut wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, (0..2).map(batch).collect::<Vec<_>>());
        assert_eq!((wal.len(), std::fs::metadata(&path).unwrap().len()), (ends[2], ends[2]));
        wal.append(&batch(7)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), wal.len() + ROOM, "room made again");
        drop(wal);
        let (_, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, [batch(0), batch(1), batch(7)]);
    }

    /// A damaged record that is not the last, a damaged header with data after it, or a file
    /// that is not a log: refused, never read as fewer batches.
    #[test]
    fn damage_before_the_end_is_corruption() {
        let (_dir, path, ends) = written(3);
        let whole = std::fs::read(&path).unwrap();
        let mut payload = whole.clone();
        payload[ends[1] as usize + RECORD_HEADER + 3] ^= 1;
        std::fs::write(&path, &payload).unwrap();
        assert!(corrupt(Wal::open(&path)).contains(&format!("record at byte {} is damaged", ends[1])));
        let mut header = whole.clone();
        header[ends[1] as usize] ^= 0x10;
        std::fs::write(&path, &header).unwrap();
        assert!(corrupt(Wal::open(&path)).contains("sound records follow"));
        let mut zeroed = whole.clone();
        zeroed[ends[0] as usize..ends[1] as usize].fill(0);
        std::fs::write(&path, &zeroed).unwrap();
        assert!(corrupt(Wal::open(&path)).contains("sound records follow"), "zeros before sound records");
        let mut magic = whole.clone();
        magic[0] = b'X';
        std::fs::write(&path, &magic).unwrap();
        assert!(corrupt(Wal::open(&path)).contains("not a write-ahead log"));
        std::fs::write(&path, vec![0xA5; 4096]).unwrap();
        corrupt(Wal::open(&path));
    }

    /// An append writes inside the file, into the room left after the records, rather than
    /// growing it; a reopened log keeps its room and appends after its last record.
    #[test]
    fn appends_write_into_room_kept_after_the_records() {
        let (_dir, path, ends) = written(3);
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(size, HEADER + ROOM, "the room made with the log, not grown by three small appends");
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt as _;
            let blocks = std::fs::metadata(&path).unwrap().blocks();
            assert!(blocks * 512 >= size, "the room is allocated, not a hole: {blocks} blocks");
        }
        let (mut wal, batches) = Wal::open(&path).unwrap();
        assert_eq!((batches.len(), wal.len()), (3, ends[3]));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "the room is not cut away");
        // A record bigger than the room left grows the file, with room after it again.
        let big = vec![Write::Put("big".into(), vec![7; ROOM as usize])];
        wal.append(&big).unwrap();
        let grown = std::fs::metadata(&path).unwrap().len();
        assert_eq!(grown, wal.len() + ROOM);
        wal.append(&batch(3)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), grown);
        drop(wal);
        let (wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches.len(), 5);
        assert_eq!((&batches[3], &batches[4]), (&big, &batch(3)));
        assert_eq!(wal.batches().unwrap(), batches);
    }

    #[test]
    fn any_bytes_decode_to_a_batch_or_none_without_panicking() {
        let mut bytes = Vec::new();
        encode(&batch(5), &mut bytes);
        assert_eq!(decode(&bytes), Some(batch(5)));
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
            let mut flipped = bytes.clone();
            flipped[cut] ^= 0xFF;
            let _ = decode(&flipped);
        }
        assert_eq!(decode(&[9]), None);
    }
}
