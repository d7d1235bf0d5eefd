//! Explanations: the Grad-CAM family of class activation maps, overlays and labelled grids,
//! and the model-versus-model comparison of the study's Figures 5 and 6.
//!
//! - [`cam`]: the methods (Grad-CAM, Grad-CAM++, HiResCAM, XGradCAM, LayerCAM, EigenCAM,
//!   ScoreCAM, AblationCAM, RandomCAM).
//! - [`gradcam`]: the gradient pass through any registered network, at a named layer
//!   (networks show their layers to a [`crate::model::tap::LayerTap`]).
//! - [`overlay`]: bilinear upsampling, colour maps, blending on the input.
//! - [`figure`]: labelled grids of panels (text in DejaVu Sans, embedded).
//! - [`samples`]: checkpoints, image files and test samples to explain.
//! - [`output`]: the output folder, `.npy` maps, PNGs.
//! - [`heatmaps`]: `visionnet gradcam`.
//! - [`compare`]: `visionnet compare`, with McNemar's test ([`crate::stats`]) and the seed-aware
//!   map comparison of [`stability`] ([`similarity`]'s measures).
//! - [`faithfulness`]: deletion / insertion AUC, ROAD ([`road`]'s imputation), average drop and
//!   increase in confidence.
//! - [`sanity`]: the cascading-randomisation sanity check.

pub mod cam;
pub mod compare;
pub mod faithfulness;
pub mod figure;
pub mod gradcam;
pub mod heatmaps;
pub mod output;
pub mod overlay;
pub mod road;
pub mod samples;
pub mod sanity;
pub mod similarity;
pub mod stability;

pub use cam::CamMethod;
pub use gradcam::{CamMap, ClassTarget, Explainer};
pub use overlay::{Colormap, OverlayStyle};
