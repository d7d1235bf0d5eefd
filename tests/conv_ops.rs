//! The conv with its own backward pass (`ops::conv`) against burn's conv2d: outputs, input and
//! weight gradients, bias, for 3x3 / 1x1 / 5x5 kernels, strides, dilation, asymmetric padding;
//! 3x3 stride-1 convs of 16+ channels (Winograd's path); grouped convs take burn's path.

use burn::backend::ops::ConvOptions;
use burn::prelude::*;
use visionnet::model::ops::conv;

mod common;
use common::{rel_err, uniform as values};

struct Grads {
    y: Tensor<4>,
    dx: Tensor<4>,
    dw: Tensor<4>,
    db: Tensor<1>,
}

/// Output and gradients of `sum(f(x, w, b) * r)` for a fixed random `r`.
fn run(
    f: impl Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>,
    x: &[usize; 4],
    w: &[usize; 4],
    options: &ConvOptions<2>,
    seed: u64,
) -> Grads {
    let device = Device::flex().autodiff();
    let leaf = |shape: [usize; 4], seed| {
        Tensor::<4>::from_data(
            TensorData::new(values(shape.iter().product(), seed), shape),
            &device,
        )
        .require_grad()
    };
    let (xt, wt) = (leaf(*x, seed), leaf(*w, seed + 1));
    let bt = Tensor::<1>::from_data(TensorData::new(values(w[0], seed + 2), [w[0]]), &device)
        .require_grad();
    let y = f(xt.clone(), wt.clone(), Some(bt.clone()), options.clone());
    let r = Tensor::<4>::from_data(
        TensorData::new(values(y.dims().iter().product(), seed + 3), y.dims()),
        &device,
    );
    let grads = (y.clone() * r).sum().backward();
    Grads {
        y: y.inner(),
        dx: xt.grad(&grads).unwrap(),
        dw: wt.grad(&grads).unwrap(),
        db: bt.grad(&grads).unwrap(),
    }
}

fn burn_conv(
    x: Tensor<4>,
    w: Tensor<4>,
    b: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    burn::tensor::module::conv2d(x, w, b, options)
}

#[test]
fn lean_backward_equals_burns_conv() {
    // (x shape, weight shape, stride, padding (before, after) per dim, dilation, groups)
    type Case = (
        [usize; 4],
        [usize; 4],
        [usize; 2],
        [(usize, usize); 2],
        [usize; 2],
        usize,
    );
    let cases: [Case; 14] = [
        (
            [2, 3, 8, 8],
            [4, 3, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ), // the CNN's first conv
        (
            [3, 5, 7, 6],
            [6, 5, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ), // odd sizes, batch > threads
        (
            [1, 4, 9, 9],
            [3, 4, 3, 3],
            [1, 1],
            [(0, 0), (0, 0)],
            [1, 1],
            1,
        ), // no padding
        (
            [2, 4, 8, 8],
            [5, 4, 1, 1],
            [1, 1],
            [(0, 0), (0, 0)],
            [1, 1],
            1,
        ), // 1x1
        (
            [2, 4, 16, 16],
            [5, 4, 1, 1],
            [1, 1],
            [(0, 0), (0, 0)],
            [1, 1],
            1,
        ), // 1x1 on a wide image: read in place
        (
            [2, 3, 9, 8],
            [4, 3, 3, 3],
            [2, 2],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ), // stride 2
        (
            [2, 3, 11, 10],
            [2, 3, 5, 5],
            [1, 2],
            [(2, 2), (1, 3)],
            [1, 1],
            1,
        ), // 5x5, asymmetric
        (
            [2, 2, 10, 10],
            [3, 2, 3, 3],
            [1, 1],
            [(2, 2), (2, 2)],
            [2, 2],
            1,
        ), // dilation 2
        (
            [2, 3, 12, 12],
            [4, 3, 7, 7],
            [2, 2],
            [(3, 3), (3, 3)],
            [1, 1],
            1,
        ), // ResNet's stem
        (
            [2, 4, 6, 6],
            [4, 1, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            4,
        ), // depthwise: burn's path
        (
            [3, 3, 16, 16],
            [4, 3, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ), // 256 outputs: one image per product
        (
            [5, 64, 64, 64],
            [8, 64, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ), // im2col of 2.4M floats: one image per block
        (
            [3, 16, 7, 6],
            [20, 16, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ), // 16+ channels: Winograd, odd sizes
        (
            [2, 24, 8, 9],
            [16, 24, 3, 3],
            [1, 1],
            [(2, 0), (0, 1)],
            [1, 1],
            1,
        ), // Winograd, asymmetric padding
    ];
    for (i, (x, w, stride, padding, dilation, groups)) in cases.into_iter().enumerate() {
        let options = ConvOptions::new_with_padding(stride, padding, dilation, groups);
        let seed = 10 * i as u64;
        let got = run(conv::conv2d, &x, &w, &options, seed);
        let want = run(burn_conv, &x, &w, &options, seed);
        let case = format!("case {i}: x {x:?} w {w:?} {options:?}");
        assert!(rel_err(got.y, want.y) < 1e-5, "{case}: outputs differ");
        assert!(
            rel_err(got.dx, want.dx) < 1e-5,
            "{case}: input gradients differ"
        );
        assert!(
            rel_err(got.dw, want.dw) < 1e-5,
            "{case}: weight gradients differ"
        );
        assert!(
            rel_err(got.db, want.db) < 1e-5,
            "{case}: bias gradients differ"
        );
    }
}

#[test]
fn no_input_gradient_is_computed_for_an_input_that_needs_none() {
    // The network's images need no gradient: the weight still gets one, the input none.
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(
        TensorData::new(values(2 * 3 * 6 * 6, 1), [2, 3, 6, 6]),
        &device,
    );
    let w = Tensor::<4>::from_data(TensorData::new(values(4 * 3 * 9, 2), [4, 3, 3, 3]), &device)
        .require_grad();
    let y = conv::conv2d(
        x.clone(),
        w.clone(),
        None,
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    );
    let grads = y.sum().backward();
    assert!(w.grad(&grads).is_some());
    assert!(x.grad(&grads).is_none());
}

#[test]
fn the_module_helper_equals_the_modules_forward() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let device = Device::flex();
    for (padding, stride, bias) in [
        (PaddingConfig2d::Explicit(1, 1, 1, 1), 1, false),
        (PaddingConfig2d::Same, 1, true),
        (PaddingConfig2d::Valid, 2, true),
    ] {
        let module = Conv2dConfig::new([3, 5], [3, 3])
            .with_padding(padding.clone())
            .with_stride([stride, stride])
            .with_bias(bias)
            .init(&device);
        let x = Tensor::<4>::from_data(
            TensorData::new(values(2 * 3 * 9 * 9, 5), [2, 3, 9, 9]),
            &device,
        );
        let err = rel_err(conv::forward(&module, x.clone()), module.forward(x));
        assert!(
            err < 1e-6,
            "{padding:?} stride {stride} bias {bias}: differs by {err}"
        );
    }
}
