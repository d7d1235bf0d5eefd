//! Training-mode BatchNorm with its own kernels (`ops::batch_norm`) against burn's `BatchNorm`:
//! outputs, input / gamma / beta gradients and the running statistics, for 4D and 2D inputs;
//! inference takes the module's own path.

use burn::module::Param;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use visionnet::model::ops::batch_norm;

mod common;
use common::{rel_err, to_vec, uniform};

/// Deterministic values in `[-amp, amp] + offset`.
fn values(len: usize, seed: u64, amp: f32, offset: f32) -> Vec<f32> {
    uniform(len, seed)
        .into_iter()
        .map(|v| v * amp + offset)
        .collect()
}

/// A BatchNorm with non-trivial gamma, beta and running statistics on `device`.
fn norm(channels: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels)
        .with_momentum(0.3)
        .init(device);
    let vector = |seed, amp, offset| {
        Tensor::<1>::from_data(
            TensorData::new(values(channels, seed, amp, offset), [channels]),
            device,
        )
    };
    bn.gamma = Param::from_tensor(vector(1, 0.5, 1.0));
    bn.beta = Param::from_tensor(vector(2, 0.5, 0.0));
    bn.running_mean.update(vector(3, 1.0, 0.0));
    bn.running_var.update(vector(4, 0.5, 1.0));
    bn
}

struct Out<const D: usize> {
    y: Tensor<D>,
    dx: Tensor<D>,
    dgamma: Tensor<1>,
    dbeta: Tensor<1>,
    running_mean: Tensor<1>,
    running_var: Tensor<1>,
}

/// `relu`: the fused BatchNorm -> ReLU (`forward_relu`) against burn's BatchNorm then ReLU.
fn run<const D: usize>(lean: bool, relu: bool, shape: [usize; D], seed: u64) -> Out<D> {
    let device = Device::flex().autodiff();
    let bn = norm(shape[1], &device);
    let n = shape.iter().product();
    let x = Tensor::<D>::from_data(TensorData::new(values(n, seed, 2.0, 0.7), shape), &device)
        .require_grad();
    let y = match (lean, relu) {
        (true, false) => batch_norm::forward(&bn, x.clone()),
        (true, true) => batch_norm::forward_relu(&bn, x.clone()),
        (false, false) => bn.forward(x.clone()),
        (false, true) => burn::tensor::activation::relu(bn.forward(x.clone())),
    };
    let r = Tensor::<D>::from_data(
        TensorData::new(values(n, seed + 9, 1.0, 0.0), shape),
        &device,
    );
    outputs(&bn, x, y, r)
}

/// The output, the gradients of `sum(y * r)` and the running statistics after the pass.
fn outputs<const D: usize>(bn: &BatchNorm, x: Tensor<D>, y: Tensor<D>, r: Tensor<D>) -> Out<D> {
    let grads = (y.clone() * r).sum().backward();
    Out {
        y: y.inner(),
        dx: x.grad(&grads).unwrap(),
        dgamma: bn.gamma.val().grad(&grads).unwrap(),
        dbeta: bn.beta.val().grad(&grads).unwrap(),
        running_mean: bn.running_mean.value().inner(),
        running_var: bn.running_var.value().inner(),
    }
}

fn check<const D: usize>(shape: [usize; D], seed: u64) {
    check_with(false, shape, seed);
}

/// BatchNorm -> ReLU -> 2x2 max-pool in training: the fused op (`forward_relu_pool`) against
/// burn's BatchNorm, ReLU and pool modules.
fn run_pool(lean: bool, shape: [usize; 4], seed: u64) -> Out<4> {
    let device = Device::flex().autodiff();
    let bn = norm(shape[1], &device);
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let n = shape.iter().product();
    let x = Tensor::<4>::from_data(TensorData::new(values(n, seed, 2.0, 0.7), shape), &device)
        .require_grad();
    let y = if lean {
        batch_norm::forward_relu_pool(&bn, &pool, x.clone())
    } else {
        pool.forward(burn::tensor::activation::relu(bn.forward(x.clone())))
    };
    let r = Tensor::<4>::from_data(
        TensorData::new(
            values(y.shape().num_elements(), seed + 9, 1.0, 0.0),
            y.dims(),
        ),
        &device,
    );
    outputs(&bn, x, y, r)
}

fn check_with<const D: usize>(relu: bool, shape: [usize; D], seed: u64) {
    let (got, want) = (run(true, relu, shape, seed), run(false, relu, shape, seed));
    compare(&format!("{shape:?}, relu {relu}"), relu, got, want);
}

fn compare<const D: usize>(case: &str, relu: bool, got: Out<D>, want: Out<D>) {
    if relu {
        let zeros = to_vec(got.y.clone()).iter().filter(|&&v| v == 0.0).count();
        assert!(
            zeros > 0 && zeros < got.y.shape().num_elements(),
            "{case}: the ReLU must cut some values and keep others"
        );
    }
    assert!(rel_err(got.y, want.y) < 1e-5, "{case}: outputs differ");
    assert!(
        rel_err(got.dx, want.dx) < 1e-4,
        "{case}: input gradients differ"
    );
    assert!(
        rel_err(got.dgamma, want.dgamma) < 1e-4,
        "{case}: gamma gradients differ"
    );
    assert!(
        rel_err(got.dbeta, want.dbeta) < 1e-5,
        "{case}: beta gradients differ"
    );
    assert!(
        rel_err(got.running_mean, want.running_mean) < 1e-5,
        "{case}: running means differ"
    );
    assert!(
        rel_err(got.running_var, want.running_var) < 1e-5,
        "{case}: running variances differ"
    );
}

#[test]
fn lean_batch_norm_equals_burns_in_training() {
    check([4, 3, 5, 5], 1);
    check([5, 8, 1, 1], 2); // one pixel per plane (with 2 images the exact input gradient is 0)
    check([3, 16, 8, 8], 3);
    check([6, 5], 4); // [batch, features]
}

#[test]
fn fused_batch_norm_relu_equals_burns_batch_norm_then_relu() {
    check_with(true, [4, 3, 5, 5], 5);
    check_with(true, [3, 16, 8, 8], 6);
    check_with(true, [6, 5], 7);
}

#[test]
fn fused_training_batch_norm_relu_pool_equals_burns_three_modules() {
    // the CNN's first layer's planes, a narrow plane (side by side in the kernels), odd sides
    // (the pool drops a row and a column that still get BatchNorm's gradient)
    for (shape, seed) in [([4, 3, 32, 32], 8), ([3, 16, 4, 4], 9), ([2, 5, 7, 9], 10)] {
        let (got, want) = (run_pool(true, shape, seed), run_pool(false, shape, seed));
        assert_eq!(got.y.dims(), want.y.dims(), "{shape:?}: pooled shape");
        compare(&format!("{shape:?}, relu + pool"), true, got, want);
    }
}

#[test]
fn inference_takes_the_modules_path() {
    // Without autodiff the module normalises with its running statistics, not the batch's.
    let device = Device::flex();
    let bn = norm(3, &device);
    let x = Tensor::<4>::from_data(
        TensorData::new(values(2 * 3 * 4 * 4, 5, 2.0, 0.7), [2, 3, 4, 4]),
        &device,
    );
    let before = to_vec(bn.running_mean.value());
    assert!(rel_err(batch_norm::forward(&bn, x.clone()), bn.forward(x.clone())) < 1e-6);
    let fused = batch_norm::forward_relu(&bn, x.clone());
    assert!(rel_err(fused.clone(), burn::tensor::activation::relu(bn.forward(x))) < 1e-6);
    assert!(
        to_vec(fused).iter().all(|&v| v >= 0.0),
        "the fused ReLU left a negative value"
    );
    assert_eq!(
        to_vec(bn.running_mean.value()),
        before,
        "inference must not update the running mean"
    );
}

#[test]
fn inference_on_an_autodiff_device_passes_gradients_as_burns_module() {
    // Grad-CAM differentiates a model in eval mode on the autodiff device: the inference op's
    // input gradient must be burn's (gamma / sqrt(running var + eps), masked by the ReLU).
    let device = Device::flex().autodiff();
    let bn = norm(4, &device).freeze();
    let shape = [2, 4, 3, 3];
    let x = || {
        Tensor::<4>::from_data(TensorData::new(values(72, 9, 2.0, 0.7), shape), &device)
            .require_grad()
    };
    let (lean_x, burn_x) = (x(), x());
    let lean = batch_norm::forward_relu(&bn, lean_x.clone());
    let burns = burn::tensor::activation::relu(bn.forward(burn_x.clone()));
    assert!(rel_err(lean.clone(), burns.clone()) < 1e-6);
    let weights = Tensor::<4>::from_data(TensorData::new(values(72, 10, 1.0, 0.0), shape), &device);
    let (lean_grads, burn_grads) = (
        (lean * weights.clone()).sum().backward(),
        (burns * weights).sum().backward(),
    );
    let (got, want) = (lean_x.grad(&lean_grads), burn_x.grad(&burn_grads));
    assert!(rel_err(got.unwrap(), want.unwrap()) < 1e-6);
}

#[test]
#[should_panic(expected = "batch norm over 3 channels: input of shape [2, 4, 4, 4]")]
fn an_input_of_other_channels_is_refused_naming_both() {
    let device = Device::flex();
    let bn = norm(3, &device);
    let x = Tensor::<4>::zeros([2, 4, 4, 4], &device);
    batch_norm::forward(&bn, x);
}
