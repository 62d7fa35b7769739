//! The container image: `FROM scratch` holding the agora binary and nothing else — or, for a
//! dynamically linked binary, the binary and exactly the shared objects its loader would load
//! (the loader lists them with `--list`, which runs nothing of the program). Its tag is a
//! digest of what it holds, so an image is built once per binary.

use super::docker::Docker;
use crate::error::UserError;
use std::path::{Path, PathBuf};

/// The image's Dockerfile. It declares no health check: `agora health` needs the node's
/// address, and a Swarm would keep a starting node out of its DNS (see `files.rs`).
pub const DOCKERFILE: &str = "\
# The agora node image (docs/cluster.md): nothing but the agora binary (and, when it is
# linked dynamically, the libraries its loader names, at their paths).
FROM scratch
COPY . /
ENTRYPOINT [\"/agora\"]
";

/// The program interpreter an x86-64 or other 64-bit little-endian ELF file names
/// (`PT_INTERP`), `None` for a statically linked one.
pub fn interpreter(elf: &[u8]) -> Result<Option<String>, String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |at: usize| elf.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err("not a 64-bit little-endian ELF executable".into());
    }
    let short = || "its ELF header is cut short".to_string();
    let phoff = u64_at(0x20).ok_or_else(short)? as usize;
    let (size, count) = (u16_at(0x36).ok_or_else(short)?, u16_at(0x38).ok_or_else(short)?);
    for i in 0..count {
        let ph = phoff.checked_add(i * size).ok_or_else(short)?;
        let kind = elf.get(ph..ph + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        if kind.ok_or_else(short)? == PT_INTERP {
            let (off, len) = (u64_at(ph + 8).ok_or_else(short)?, u64_at(ph + 32).ok_or_else(short)?);
            let name = elf.get(off as usize..(off + len) as usize).ok_or_else(short)?;
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            return Ok(Some(String::from_utf8_lossy(name).into_owned()));
        }
    }
    Ok(None)
}

/// The absolute paths in the loader's `--list` output (`libc.so.6 => /lib/.../libc.so.6
/// (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`); the vDSO has none.
pub fn listed_paths(list: &str) -> Vec<PathBuf> {
    list.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split_once("=>").map_or(l, |(_, p)| p.trim());
            let path = path.split(" (").next().unwrap_or_default().trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The files of the image: `(path in the image, file on this machine)`.
fn contents(binary: &Path) -> Result<Vec<(PathBuf, PathBuf)>, UserError> {
    let bytes =
        std::fs::read(binary).map_err(|e| UserError(format!("--binary {}: {e}", binary.display())))?;
    let interp = interpreter(&bytes).map_err(|e| UserError(format!("--binary {}: {e}", binary.display())))?;
    let mut files = vec![(PathBuf::from("agora"), binary.to_path_buf())];
    if let Some(loader) = interp {
        let out = std::process::Command::new(&loader).arg("--list").arg(binary).output().map_err(|e| {
            UserError(format!("cannot ask the loader {loader} what {} needs: {e}", binary.display()))
        })?;
        if !out.status.success() {
            return Err(UserError(format!(
                "the loader {loader} cannot list what {} needs",
                binary.display()
            )));
        }
        for p in listed_paths(&String::from_utf8_lossy(&out.stdout)) {
            files.push((p.strip_prefix("/").expect("absolute").to_path_buf(), p));
        }
    }
    Ok(files)
}

/// The image for `binary`: built unless an image of the same contents exists. Returns its
/// tag and whether the binary is statically linked.
pub fn ensure(docker: &Docker, binary: &Path) -> Result<(String, bool), UserError> {
    let files = contents(binary)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOCKERFILE.as_bytes());
    for (inside, outside) in &files {
        hasher.update(inside.as_os_str().as_encoded_bytes());
        std::fs::File::open(outside)
            .and_then(|mut f| std::io::copy(&mut f, &mut hasher))
            .map_err(|e| UserError(format!("cannot read {}: {e}", outside.display())))?;
    }
    let tag = format!("agora-node:{}", &hasher.finalize().to_hex()[..16]);
    let is_static = files.len() == 1;
    if docker.succeeds(&["image", "inspect", &tag]) {
        return Ok((tag, is_static));
    }
    let context = tempfile::Builder::new()
        .prefix("agora-image-")
        .tempdir()
        .map_err(|e| UserError(format!("cannot create a temporary directory: {e}")))?;
    for (inside, outside) in &files {
        let to = context.path().join(inside);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| UserError(format!("{}: {e}", parent.display())))?;
        }
        // A hard link when it can (the binary may be large), a copy otherwise; a copy also
        // turns a library's symbolic link into the file it names.
        let linked = std::fs::symlink_metadata(outside).is_ok_and(|m| m.is_file())
            && std::fs::hard_link(outside, &to).is_ok();
        if !linked {
            std::fs::copy(outside, &to)
                .map_err(|e| UserError(format!("cannot copy {}: {e}", outside.display())))?;
        }
    }
    std::fs::write(context.path().join("Dockerfile"), DOCKERFILE)
        .map_err(|e| UserError(format!("cannot write the Dockerfile: {e}")))?;
    let dir = context.path().to_string_lossy().into_owned();
    eprintln!("agora: building the image {tag} ({} file(s), from {})", files.len(), binary.display());
    docker.docker(&["build", "-q", "--label", "agora.image=node", "-t", &tag, &dir])?;
    Ok((tag, is_static))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_list_gives_every_library_path() {
        let list = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        let paths = listed_paths(list);
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn an_elf_file_names_its_interpreter_or_none() {
        // The test binary itself is an ELF file of this machine: linked one way or the other.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&me).unwrap();
        if let Some(loader) = &interp {
            assert!(loader.starts_with('/') && loader.contains("ld"), "{loader}");
        }
        assert!(interpreter(b"#!/bin/sh\n").is_err());
        assert!(interpreter(&me[..0x30]).is_err(), "a cut header is an error, not a panic");
    }
}
