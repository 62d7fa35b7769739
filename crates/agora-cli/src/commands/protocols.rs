//! `agora protocols`: every protocol with its parameters, the faults its safety tolerates (its
//! fault model) and the properties its checker judges.

use crate::error::UserError;
use agora_core::Setup;
use agora_protocols::{Driver, Params, PROTOCOLS};

/// Lists every protocol with the properties its checker judges.
pub fn run() -> Result<i32, UserError> {
    struct Properties;
    impl Driver for Properties {
        type Output = (Vec<agora_core::Property>, agora_core::FaultModel);
        fn run<S: Setup>(self, setup: S) -> Self::Output {
            (setup.checker().properties(), setup.fault_model())
        }
    }
    for e in PROTOCOLS {
        println!("{:<14} {}", e.name, e.about);
        if !e.specs.is_empty() {
            let params: Vec<String> = e
                .specs
                .iter()
                .map(|s| match &s.default {
                    Some(d) => format!("{} {d}", crate::cli::flag(s.param)),
                    None => crate::cli::flag(s.param),
                })
                .collect();
            println!("    parameters: {}", params.join(", "));
        }
        let (properties, model) = agora_protocols::dispatch(e.name, &Params::new(5, 1), Properties)?;
        println!("    tolerates: {}", model.describe());
        for p in properties {
            let kind = match p.kind {
                agora_core::PropertyKind::Always => "always",
                agora_core::PropertyKind::AtEnd => "at end",
            };
            println!("    {:<22} {kind:<7} {}", p.name, p.description);
        }
    }
    Ok(0)
}
