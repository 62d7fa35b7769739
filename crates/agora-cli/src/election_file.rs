//! The election file (TOML, see `examples/election.toml`): the election's id, options, key and
//! regions, parsed into a checked `Spec` or a one-line reason.

use agora_protocols::vote_count::states::{self, STATES};
use agora_protocols::vote_count::Spec;
use serde::Deserialize;

/// Longest id, option or region name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ElectionFile {
    id: String,
    options: Vec<String>,
    /// The authority's key, 64 hex digits [default: derived from the id].
    key: Option<String>,
    #[serde(rename = "region")]
    regions: Vec<RegionEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    name: String,
    states: Vec<String>,
}

/// `N` bytes from `2N` hex digits.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The election of an election file's `text`, with `voters` voters.
pub fn parse(text: &str, voters: u64) -> Result<Spec, String> {
    let f: ElectionFile =
        toml::from_str(text).map_err(|e| e.to_string().split_whitespace().collect::<Vec<_>>().join(" "))?;
    if f.id.trim().is_empty() {
        return Err("`id` is empty".into());
    }
    if f.options.is_empty() || f.options.len() > 16 {
        return Err(format!("{} options; a ballot needs 1 to 16", f.options.len()));
    }
    if let Some((i, o)) = f.options.iter().enumerate().find(|(i, o)| f.options[..*i].contains(o)) {
        return Err(format!("option {} `{o}` is on the ballot twice", i + 1));
    }
    if f.regions.is_empty() || f.regions.len() > STATES.len() {
        return Err(format!("{} regions; 1 to {} are allowed", f.regions.len(), STATES.len()));
    }
    let names = std::iter::once(&f.id).chain(&f.options).chain(f.regions.iter().map(|r| &r.name));
    if let Some(long) = names.into_iter().find(|n| n.len() > MAX_NAME_BYTES) {
        return Err(format!("a name of {} bytes; at most {MAX_NAME_BYTES}", long.len()));
    }
    let key = match &f.key {
        Some(k) => unhex::<32>(k).ok_or("`key` must be 64 hex digits")?,
        None => *blake3::hash(f.id.as_bytes()).as_bytes(),
    };
    let mut state_region = vec![u8::MAX; STATES.len()];
    for (r, entry) in f.regions.iter().enumerate() {
        for code in &entry.states {
            let i = states::by_code(code)
                .ok_or_else(|| format!("region `{}`: `{code}` is not a state", entry.name))?;
            if state_region[i] != u8::MAX {
                return Err(format!("{code} is in two regions"));
            }
            state_region[i] = r as u8;
        }
    }
    if let Some(i) = state_region.iter().position(|r| *r == u8::MAX) {
        return Err(format!("{} is in no region", STATES[i].code));
    }
    Ok(Spec {
        id: f.id,
        options: f.options,
        regions: f.regions.into_iter().map(|r| r.name).collect(),
        state_region,
        voters,
        key,
    })
}
