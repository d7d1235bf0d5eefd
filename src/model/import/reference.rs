//! The names of `bench/pytorch_reference.py`'s `Net` for the study's CNN and its attention
//! models: `units.N.conv`, `units.N.attn.{q,k,v,gamma}`, `units.N.norm`, `shared` (arch 1's
//! six scalars), `hidden.N`, `out`. Only what that module can express has a table: plain 3x3
//! convs, one unit per stage, no lateral connections, one attention head, arch 2's q/k/v per
//! layer (module paths as burn-store lists them, enum variants left out; the module's widths are its own: 32, 64, 128, 256 and 512, 256, 128 by default).

use super::Layer;
use crate::error::{Error, Result};
use crate::model::blocks::{AttentionArch, ConvKind, LateralKind};
use crate::model::nets::CnnConfig;

pub(super) fn cnn(c: &CnnConfig) -> Result<Vec<Layer>> {
    let refuse = |what: &str| {
        Err(Error::invalid(
            "--model",
            format!(
                "bench/pytorch_reference.py has no module for {what}; export and import cover the plain study CNN and attn1/2/3"
            ),
        ))
    };
    if c.conv != ConvKind::Plain {
        return refuse("multi-feature convs (--conv)");
    }
    if c.lateral != LateralKind::None {
        return refuse("lateral connections (--lateral)");
    }
    if c.stage_depth != 1 {
        return refuse("--stage-depth above 1");
    }
    if let Some(a) = &c.attention {
        if a.heads != 1 {
            return refuse("multi-head attention (--attn-heads)");
        }
        if a.shared_width.is_some() {
            return refuse("shared arch-2 q/k/v (--attn-shared)");
        }
    }
    let mut layers = Vec::new();
    if matches!(
        c.attention.as_ref().map(|a| a.arch),
        Some(AttentionArch::Arch1)
    ) {
        layers.push(Layer::tensor("shared.weight", "shared.weight"));
        layers.push(Layer::tensor("shared.bias", "shared.bias"));
    }
    for i in 0..c.widths.len() {
        let (file, module) = (format!("units.{i}"), format!("convs.{i}"));
        layers.push(Layer::conv(
            format!("{file}.conv"),
            format!("{module}.conv"),
            false,
        ));
        match c.attention.as_ref().map(|a| a.arch) {
            Some(AttentionArch::Arch2) => {
                let own = format!("{module}.attention.own");
                for (f, m) in [("q", "query"), ("k", "key"), ("v", "value")] {
                    layers.push(Layer::conv(
                        format!("{file}.attn.{f}"),
                        format!("{own}.{m}"),
                        true,
                    ));
                }
                layers.push(Layer::tensor(
                    format!("{file}.attn.gamma"),
                    format!("{module}.attention.gamma"),
                ));
            }
            Some(AttentionArch::Arch3) => {
                for (f, m) in [("q", "query"), ("k", "key")] {
                    let mut l = Layer::linear(
                        format!("{file}.attn.{f}"),
                        format!("{module}.attention.{m}"),
                    );
                    l.head = false;
                    l.kind = super::Kind::Linear { bias: false };
                    layers.push(l);
                }
            }
            Some(AttentionArch::Arch1) | None => {}
        }
        layers.push(Layer::bn(format!("{file}.norm"), format!("{module}.norm")));
    }
    for j in 0..c.hidden.len() {
        // The hidden layers are backbone: a transfer replaces only `out`.
        let mut l = Layer::linear(format!("hidden.{j}"), format!("head.hidden.{j}"));
        l.head = false;
        layers.push(l);
    }
    layers.push(Layer::linear("out", "head.output"));
    Ok(layers)
}
