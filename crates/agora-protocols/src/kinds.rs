//! `kinds!`: a protocol's [`agora_core::Message`] implementation as the table it is — the
//! kind each variant of its message enum is counted under in metrics and diagrams.
//!
//! ```ignore
//! kinds!(Msg { Request => "REQUEST", Grant => "GRANT", Release => "RELEASE" });
//! ```

/// Implements `Message` for the enum `$msg`: variant `$variant` (whatever its fields) is of
/// kind `$kind`.
macro_rules! kinds {
    ($msg:ident { $($variant:ident => $kind:literal),+ $(,)? }) => {
        impl agora_core::Message for $msg {
            fn kind(&self) -> &'static str {
                match self {
                    $($msg::$variant { .. } => $kind,)+
                }
            }
        }
    };
}
