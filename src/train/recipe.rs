//! The recipe's additions around each optimizer step, in one place so that the training loop
//! only calls them: weight decay that spares BatchNorm and bias parameters
//! ([`SelectiveDecay`]), lookahead ([`Lookahead`]) and the moving average of the weights
//! ([`Ema`]). Each is off unless its flag asks for it; their state travels in the checkpoint.

use std::path::Path;

use burn::module::Module;
use burn::optim::GradientsParams;

use super::checkpoint::{self, EMA_FILE, LOOKAHEAD_FILE};
use super::config::TrainConfig;
use super::decay::SelectiveDecay;
use super::ema::Ema;
use super::lookahead::Lookahead;
use crate::error::Result;
use crate::model::Network;

/// The step hooks of a run.
#[derive(Clone, Debug)]
pub struct StepHooks {
    decay: Option<SelectiveDecay>,
    lookahead: Option<Lookahead>,
    ema: Option<Ema>,
}

impl StepHooks {
    /// The hooks of a fresh run whose initial model is `model`.
    pub fn fresh(config: &TrainConfig, model: &Network) -> Self {
        Self {
            decay: SelectiveDecay::of(config),
            lookahead: (config.lookahead_k > 0)
                .then(|| Lookahead::new(config.lookahead_k, config.lookahead_alpha, model)),
            ema: config.ema.map(|d| Ema::new(d, config.ema_warmup, model, 0)),
        }
    }

    /// The hooks of a run resumed from `checkpoint` after `step` optimizer steps (`None`: from
    /// the start, with the initial `model`).
    pub fn resume(
        config: &TrainConfig,
        model: &Network,
        checkpoint: Option<&Path>,
        step: usize,
    ) -> Result<Self> {
        let mut hooks = Self::fresh(config, model);
        let Some(ckpt) = checkpoint else {
            return Ok(hooks);
        };
        if let Some(la) = &mut hooks.lookahead {
            let slow = checkpoint::load_model_file(ckpt, LOOKAHEAD_FILE, model.valid())?;
            *la = Lookahead::new(config.lookahead_k, config.lookahead_alpha, &slow);
        }
        if let Some(decay) = config.ema {
            let average = checkpoint::load_model_file(ckpt, EMA_FILE, model.valid())?;
            hooks.ema = Some(Ema::new(decay, config.ema_warmup, &average, step as u64));
        }
        Ok(hooks)
    }

    /// Before the optimizer's update with learning rate `lr`.
    pub fn before_step(
        &self,
        model: Network,
        grads: GradientsParams,
        lr: f64,
    ) -> (Network, GradientsParams) {
        match &self.decay {
            Some(decay) => decay.apply(model, grads, lr),
            None => (model, grads),
        }
    }

    /// After optimizer step `step` (1-based over the run): lookahead's sync, then the moving
    /// average's update (of the weights training continues from).
    pub fn after_step(&mut self, step: usize, model: Network) -> Network {
        let model = match &mut self.lookahead {
            Some(la) => la.after_step(step as u64, model),
            None => model,
        };
        if let Some(ema) = &mut self.ema {
            ema.update(&model);
        }
        model
    }

    /// The model that validation and test evaluate (inference mode): the moving average with
    /// `--ema`, else the live weights.
    pub fn evaluated(&self, live: &Network) -> Network {
        match &self.ema {
            Some(ema) => ema.model().clone(),
            None => live.valid(),
        }
    }

    /// Which weights [`evaluated`](Self::evaluated) gives, for `summary.json`.
    pub fn weights(&self) -> &'static str {
        if self.ema.is_some() { "ema" } else { "last" }
    }

    /// The models a checkpoint must hold besides the live one.
    pub fn checkpoint_models(&self) -> Vec<(&'static str, &Network)> {
        let mut out = Vec::new();
        if let Some(ema) = &self.ema {
            out.push((EMA_FILE, ema.model()));
        }
        if let Some(la) = &self.lookahead {
            out.push((LOOKAHEAD_FILE, la.slow()));
        }
        out
    }
}
