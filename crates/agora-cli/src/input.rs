//! Reading a user's input file: a regular file of bounded size, or a one-line reason why not.
//!
//! Every file agora reads on a user's say-so (fault file, cluster file, election file) goes
//! through [`read_text`], so `--faults /dev/zero` or a multi-gigabyte file is refused before
//! anything is read into memory.

use crate::error::UserError;
use std::io::Read;
use std::path::Path;

/// The largest configuration file (fault, cluster, election file) agora reads: 1 MiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads `path` as UTF-8 text; `what` names the file in errors ("fault file"). Refuses
/// anything but a regular file of at most `max_bytes` bytes.
pub fn read_text(path: &Path, what: &str, max_bytes: u64) -> Result<String, UserError> {
    let fail = |why: String| UserError(format!("cannot read {what} {}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > max_bytes {
        return Err(fail(format!("{} bytes; at most {max_bytes} are read", meta.len())));
    }
    // The size can change between the check and the read: read one byte past the cap at most.
    // Sized once from the metadata (at most `max_bytes`): a history of a few hundred MB grown by
    // doubling would be copied and zeroed page by page several times over.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(fail(format!("larger than {max_bytes} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_directories_devices_and_big_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_text(dir.path(), "fault file", 10).unwrap_err().msg.contains("not a regular file"));
        assert!(read_text(Path::new("/dev/zero"), "fault file", 10).unwrap_err().msg.contains("regular"));
        let f = dir.path().join("big.toml");
        std::fs::write(&f, "x".repeat(11)).unwrap();
        assert!(read_text(&f, "fault file", 10).unwrap_err().msg.contains("11 bytes"));
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text(&f, "fault file", 10).unwrap_err().msg.contains("UTF-8"));
        std::fs::write(&f, "ok").unwrap();
        assert_eq!(read_text(&f, "fault file", 10).unwrap(), "ok");
    }
}
