//! Max-pooling with its own kernels (`ops::max_pool`) against burn's `MaxPool2d`: outputs and
//! input gradients for the windows the models use (2x2 stride 2; 3x3 stride 2 and stride 1 with
//! padding 1) and others (dilation, odd sizes, overlapping windows), ties and NaN.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use visionnet::model::ops::max_pool;

mod common;
use common::{rel_err, to_vec, uniform};

fn pool(kernel: usize, stride: usize, padding: usize, dilation: usize) -> MaxPool2d {
    MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_dilation([dilation, dilation])
        .init()
}

/// `(y, dx)` of `sum(pool(x) * r)` with the lean op or burn's, on flex with autodiff.
fn run(lean: bool, pool: &MaxPool2d, x: &[f32], shape: [usize; 4]) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), &device).require_grad();
    let y = if lean {
        max_pool::forward(pool, x.clone())
    } else {
        pool.forward(x.clone())
    };
    let r = Tensor::<4>::from_data(
        TensorData::new(uniform(y.shape().num_elements(), 7), y.dims()),
        &device,
    );
    let grads = (y.clone() * r).sum().backward();
    (to_vec(y.inner()), to_vec(x.grad(&grads).unwrap()))
}

fn check(pool: &MaxPool2d, shape: [usize; 4], seed: u64) {
    let x = uniform(shape.iter().product(), seed);
    let (y, dx) = run(true, pool, &x, shape);
    let (y_ref, dx_ref) = run(false, pool, &x, shape);
    let case = format!("{pool} on {shape:?}");
    assert_eq!(y.len(), y_ref.len(), "{case}: output sizes differ");
    assert_eq!(y, y_ref, "{case}: outputs differ");
    let device = Device::flex();
    let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device);
    assert!(
        rel_err(t(dx), t(dx_ref)) < 1e-6,
        "{case}: input gradients differ"
    );
}

#[test]
fn lean_max_pool_equals_burns() {
    check(&pool(2, 2, 0, 1), [2, 3, 8, 8], 1); // the study's CNN, VGG
    check(&pool(2, 2, 0, 1), [1, 2, 7, 5], 2); // odd sides: the last row / column is dropped
    check(&pool(2, 2, 0, 1), [2, 3, 6, 39], 7); // rows of 19 windows: 16 in vector registers, 3 not
    check(&pool(2, 2, 0, 1), [3, 5, 4, 4], 8); // short rows: many planes' row pairs side by side
    check(&pool(3, 2, 1, 1), [2, 4, 9, 8], 3); // ResNet's stem, Xception's blocks
    check(&pool(3, 1, 1, 1), [2, 3, 6, 6], 4); // Inception's pool branch: overlapping windows
    check(&pool(2, 1, 0, 2), [1, 2, 7, 7], 5); // dilated
    check(&pool(3, 3, 0, 1), [1, 1, 10, 11], 6);
}

#[test]
fn ties_send_the_gradient_to_the_first_maximum() {
    // A constant image: every window is all ties; both implementations pick the first (top-left).
    for p in [pool(2, 2, 0, 1), pool(3, 1, 1, 1)] {
        let x = vec![0.5; 2 * 6 * 6];
        let (y, dx) = run(true, &p, &x, [1, 2, 6, 6]);
        let (y_ref, dx_ref) = run(false, &p, &x, [1, 2, 6, 6]);
        assert_eq!(y, y_ref, "{p}");
        assert_eq!(
            dx, dx_ref,
            "{p}: tied windows route their gradient differently"
        );
    }
    // -0.0 and 0.0 are equal (ReLU gives both): the first of them is the maximum.
    let x: Vec<f32> = (0..2 * 6 * 6)
        .map(|i| if i % 3 == 0 { -0.0 } else { 0.0 })
        .collect();
    for p in [pool(2, 2, 0, 1), pool(3, 1, 1, 1)] {
        let (_, dx) = run(true, &p, &x, [1, 2, 6, 6]);
        let (_, dx_ref) = run(false, &p, &x, [1, 2, 6, 6]);
        assert_eq!(
            dx, dx_ref,
            "{p}: windows of signed zeros route their gradient differently"
        );
    }
}

#[test]
fn a_nan_in_a_window_is_its_maximum() {
    let mut x = uniform(16, 3);
    x[5] = f32::NAN; // row 1, column 1: the first 2x2 window
    let (y, dx) = run(true, &pool(2, 2, 0, 1), &x, [1, 1, 4, 4]);
    assert!(
        y[0].is_nan(),
        "the NaN's window must give NaN, got {}",
        y[0]
    );
    assert!(y[1..].iter().all(|v| v.is_finite()));
    assert!(
        dx[5] != 0.0 && [0, 1, 4].iter().all(|&i| dx[i] == 0.0),
        "the window's gradient goes to the NaN"
    );
}

#[test]
fn without_autodiff_the_op_only_pools() {
    let device = Device::flex();
    let p = pool(2, 2, 0, 1);
    let x = Tensor::<4>::from_data(
        TensorData::new(uniform(3 * 2 * 6 * 6, 9), [3, 2, 6, 6]),
        &device,
    );
    assert_eq!(
        to_vec(max_pool::forward(&p, x.clone())),
        to_vec(p.forward(x))
    );
}

#[test]
fn asymmetric_padding_and_ceil_mode_take_burns_op() {
    let device = Device::flex();
    let x = Tensor::<4>::from_data(
        TensorData::new(uniform(2 * 7 * 7, 4), [1, 2, 7, 7]),
        &device,
    );
    let same = MaxPool2dConfig::new([2, 2])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Same)
        .init();
    let ceil = MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init();
    for p in [same, ceil] {
        let (got, want) = (max_pool::forward(&p, x.clone()), p.forward(x.clone()));
        assert_eq!(got.dims(), want.dims(), "{p}");
        assert_eq!(to_vec(got), to_vec(want), "{p}");
    }
}
