//! `setup!`: the [`agora_core::Setup`] implementation a protocol's setup struct shares with
//! the others, so that each protocol states only what is its own — its name, its node type
//! (which builds itself with `new(setup, id, stable)`), how many nodes it has (`nodes` unless
//! said otherwise), its fault model ([`agora_core::model`]), its checker and, if any, which of
//! its nodes are interchangeable ([`agora_core::Symmetry`]).
//!
//! ```text
//! setup!(BullySetup => Bully, "bully", model: MODEL, checker: |s| ElectionChecker::new(s.nodes, s.timeout));
//! setup!(FloodSetup => Flood, "flood", nodes: |s| s.graph.nodes(), model: MODEL, checker: |s| FloodChecker::new(s));
//! ```

/// Implements `Setup` for `$setup`: named `$name`, its nodes built by
/// `$node::new(&$setup, NodeId, &Stable) -> Result<$node, Corrupt>`, its node count the
/// `nodes` expression (the field `nodes` by default), its fault model `model`, its checker
/// the `checker` expression.
macro_rules! setup {
    ($setup:ty => $node:ty, $name:literal, model: $model:expr, checker: |$c:ident| $checker:expr
     $(, symmetry: |$y:ident| $symmetry:expr)? $(,)?) => {
        setup!($setup => $node, $name, nodes: |s| s.nodes, model: $model, checker: |$c| $checker
            $(, symmetry: |$y| $symmetry)?);
    };
    ($setup:ty => $node:ty, $name:literal, nodes: |$n:ident| $nodes:expr, model: $model:expr, checker: |$c:ident| $checker:expr
     $(, symmetry: |$y:ident| $symmetry:expr)? $(,)?) => {
        impl agora_core::Setup for $setup {
            type Node = $node;

            fn name(&self) -> &'static str {
                $name
            }

            fn nodes(&self) -> usize {
                let $n = self;
                $nodes
            }

            fn build(
                &self,
                id: agora_core::NodeId,
                stable: &agora_core::Stable,
            ) -> Result<$node, agora_core::Corrupt> {
                <$node>::new(self, id, stable)
            }

            fn checker(&self) -> Box<dyn agora_core::Checker<$node>> {
                let $c = self;
                Box::new($checker)
            }

            fn fault_model(&self) -> agora_core::FaultModel {
                $model
            }
            $(
            fn symmetry(&self) -> Option<agora_core::Symmetry<$node>> {
                let $y = self;
                $symmetry
            }
            )?
        }
    };
}
