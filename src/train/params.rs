//! Arithmetic between two copies of one network, parameter by parameter (matched by parameter
//! id, which copies made by `clone` or `valid` share): what the weight average (EMA) and
//! lookahead are made of.
//!
//! A `clone` of a network shares its BatchNorm running statistics (burn keeps them behind one
//! lock for all clones), so mapping a clone changes the original's statistics too; `valid`
//! makes a copy with statistics of its own. Copies that must stay apart are made with `valid`.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

use crate::model::Network;

/// Which float tensors of a network to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Every float tensor: the parameters and the BatchNorm running statistics.
    All,
    /// Only the tensors the optimizer trains (those that require gradients).
    Trainable,
}

/// Float tensors of a network by parameter id, flattened and without autodiff.
pub type Flat = HashMap<ParamId, Tensor<1>>;

struct Collect {
    which: Which,
    out: Flat,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        if self.which == Which::Trainable && !tensor.is_require_grad() {
            return;
        }
        let n = tensor.shape().num_elements();
        self.out
            .insert(param.id, tensor.without_autodiff().reshape([n]));
    }
}

/// The float tensors of `model` that `which` selects.
pub fn flat(model: &Network, which: Which) -> Flat {
    let mut visitor = Collect {
        which,
        out: HashMap::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}

struct Combine<'a, F> {
    other: &'a Flat,
    f: F,
}

impl<F: FnMut(Tensor<1>, Tensor<1>) -> Tensor<1>> ModuleMapper for Combine<'_, F> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(other) = self.other.get(&param.id) else {
            return param;
        };
        let other = other.clone();
        let f = &mut self.f;
        param.map(|tensor| {
            let dims = tensor.dims();
            let (autodiff, require_grad) = (tensor.is_autodiff(), tensor.is_require_grad());
            let n = tensor.shape().num_elements();
            let out = f(tensor.without_autodiff().reshape([n]), other).reshape(dims);
            // A new leaf with the same training state as the tensor it replaces.
            if autodiff {
                out.autodiff().set_require_grad(require_grad)
            } else {
                out
            }
        })
    }
}

/// Replaces each float tensor `x` of `model` whose id is in `other` by `f(x, other[id])`
/// (both flattened, without autodiff); the result keeps the tensor's shape, autodiff and
/// whether it requires gradients. Tensors not in `other` are left as they are.
pub fn combine(
    model: Network,
    other: &Flat,
    f: impl FnMut(Tensor<1>, Tensor<1>) -> Tensor<1>,
) -> Network {
    model.map(&mut Combine { other, f })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::table::network_config;
    use crate::model::{ImageClassifierConfig, ModelSpec};

    /// A small study CNN (4 classes, 16x16 inputs) on `device`.
    pub(crate) fn tiny_cnn(device: &Device, seed: u64) -> Network {
        let mut spec = ModelSpec {
            name: "cnn".into(),
            options: Default::default(),
        };
        spec.options.widths = vec![4, 4, 8, 8];
        spec.options.hidden = vec![8, 8, 8];
        device.seed(seed);
        network_config(&spec, 4, [3, 16, 16])
            .unwrap()
            .init(device)
            .unwrap()
    }

    /// Every float tensor of `model`, flattened to host values, by id.
    pub(crate) fn values(model: &Network, which: Which) -> HashMap<ParamId, Vec<f32>> {
        flat(model, which)
            .into_iter()
            .map(|(id, t)| {
                (
                    id,
                    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn trainable_leaves_out_running_statistics() {
        let device = Device::flex().autodiff();
        let model = tiny_cnn(&device, 1);
        let all = flat(&model, Which::All).len();
        let trainable = flat(&model, Which::Trainable).len();
        // Each BatchNorm has a running mean and variance that the optimizer does not train.
        assert!(trainable < all, "{trainable} trainable of {all}");
        assert!(trainable > 0);
        assert_eq!(flat(&model.valid(), Which::Trainable).len(), 0);
    }

    #[test]
    fn combine_keeps_shapes_ids_and_gradient_state() {
        let device = Device::flex().autodiff();
        let model = tiny_cnn(&device, 2);
        let before = values(&model, Which::All);
        let doubled = flat(&model, Which::All);
        let out = combine(model.clone(), &doubled, |x, y| x + y);
        let after = values(&out, Which::All);
        assert_eq!(before.len(), after.len());
        for (id, v) in &before {
            let w = &after[id];
            assert!(v.iter().zip(w).all(|(a, b)| (2.0 * a - b).abs() < 1e-6));
        }
        assert_eq!(
            flat(&out, Which::Trainable).len(),
            flat(&model, Which::Trainable).len()
        );
    }
}
