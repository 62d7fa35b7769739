//! `kinds!`: a protocol's [`agora_core::Message`] implementation as the table it is — the
//! kind each variant of its message enum is counted under in metrics and diagrams.
//!
//! ```text
//! kinds!(Msg { Request => "REQUEST", Grant => "GRANT", Release => "RELEASE" });
//! kinds!(Msg { Raft(m) => m.kind(), Cast => "CAST" });
//! ```

/// Implements `Message` for the enum `$msg`: variant `$variant` (whatever its fields) is of
/// kind `$kind`; a variant that wraps another protocol's message, `Variant(m) => m.kind()`,
/// names its first field and tells its kind from it.
macro_rules! kinds {
    ($msg:ident { $($variant:ident $(($inner:ident))? => $kind:expr),+ $(,)? }) => {
        impl agora_core::Message for $msg {
            fn kind(&self) -> &'static str {
                match self {
                    $($msg::$variant { $(0: $inner,)? .. } => $kind,)+
                }
            }
        }
    };
}
