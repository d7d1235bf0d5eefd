//! The lean pixel-attention operation (arch 1 and 2's kernel) against the naive reference:
//! outputs and all gradients, CPU kernels and the portable tiled path, several sizes; gradients
//! against finite differences; and arch 3's operation against the same block from tensor
//! operations. The kernels' SIMD paths against their portable forms are the kernels crate's
//! own unit tests (crates/kernels/src/attention/tests.rs, channel_attention.rs).

use burn::backend::Flex;
use burn::prelude::*;
use visionnet::model::ops::attention::tiled;
use visionnet::model::ops::{self, Kernel};

mod common;
use common::{rel_err, to_vec, uniform};

/// Deterministic values in `[-amp, amp]`.
fn values(len: usize, seed: u64, amp: f32) -> Vec<f32> {
    uniform(len, seed).into_iter().map(|v| v * amp).collect()
}

fn tensor3(shape: [usize; 3], seed: u64, amp: f32, device: &Device) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(values(shape.iter().product(), seed, amp), shape),
        device,
    )
}

/// Output and gradients of `sum(f(q, k, v) * w)` on the autodiff device.
struct Run {
    y: Tensor<3>,
    dq: Tensor<3>,
    dk: Tensor<3>,
    dv: Tensor<3>,
}

fn run(
    f: impl Fn(Tensor<3>, Tensor<3>, Tensor<3>) -> Tensor<3>,
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    w: &Tensor<3>,
) -> Run {
    let device = Device::flex().autodiff();
    let leaf = |t: &Tensor<3>| Tensor::<3>::from_data(t.to_data(), &device).require_grad();
    let (q, k, v) = (leaf(q), leaf(k), leaf(v));
    let y = f(q.clone(), k.clone(), v.clone());
    let loss = (y.clone() * Tensor::<3>::from_data(w.to_data(), &device)).sum();
    let grads = loss.backward();
    Run {
        y: y.inner(),
        dq: q.grad(&grads).unwrap(),
        dk: k.grad(&grads).unwrap(),
        dv: v.grad(&grads).unwrap(),
    }
}

/// `(g, dk, dv, n)`: the outer-product kernel (dk = dv = 1; n not a multiple of 8, and 32x32),
/// the dense kernel (one block, several blocks of 64 rows, the 32x32 size of arch 2).
const CASES: [(usize, usize, usize, usize); 10] = [
    (3, 1, 1, 1),
    (4, 1, 1, 7),
    (2, 1, 1, 37),
    (5, 1, 1, 100),
    (2, 1, 1, 1024),
    (3, 2, 3, 5),
    (2, 4, 8, 70),
    (2, 3, 5, 129),
    (1, 8, 16, 200),
    (1, 4, 32, 1024),
];

const TOLERANCE: f32 = 5e-6;

#[test]
fn lean_equals_naive_outputs_and_all_gradients() {
    let device = Device::flex();
    for (i, &(g, dk, dv, n)) in CASES.iter().enumerate() {
        let seed = 10 * i as u64;
        let q = tensor3([g, dk, n], seed, 2.0, &device);
        let k = tensor3([g, dk, n], seed + 1, 2.0, &device);
        let v = tensor3([g, dv, n], seed + 2, 1.0, &device);
        let w = tensor3([g, dv, n], seed + 3, 1.0, &device);
        let scale = 0.8;
        let naive = run(
            |q, k, v| ops::attention_naive(q, k, v, scale),
            &q,
            &k,
            &v,
            &w,
        );
        for kernel in [Kernel::Native, Kernel::Tiled] {
            let lean = run(
                |q, k, v| ops::attention(q, k, v, scale, kernel),
                &q,
                &k,
                &v,
                &w,
            );
            let what = format!("{kernel:?} g={g} dk={dk} dv={dv} n={n}");
            for (name, got, want) in [
                ("y", &lean.y, &naive.y),
                ("dq", &lean.dq, &naive.dq),
                ("dk", &lean.dk, &naive.dk),
                ("dv", &lean.dv, &naive.dv),
            ] {
                let err = rel_err(got.clone(), want.clone());
                assert!(
                    err < TOLERANCE,
                    "{what}: {name} differs from the naive reference by {err}"
                );
            }
        }
    }
}

#[test]
fn lean_handles_strided_inputs_and_extreme_scores() {
    // Inputs that are transposed views, and scores in the hundreds (softmax nearly one-hot):
    // the kernels must subtract each row's maximum.
    let device = Device::flex();
    let (g, dk, dv, n) = (2, 3, 4, 50);
    let q = tensor3([g, n, dk], 1, 30.0, &device).swap_dims(1, 2);
    let k = tensor3([g, n, dk], 2, 30.0, &device).swap_dims(1, 2);
    let v = tensor3([g, n, dv], 3, 1.0, &device).swap_dims(1, 2);
    let w = tensor3([g, dv, n], 4, 1.0, &device);
    let naive = run(|q, k, v| ops::attention_naive(q, k, v, 1.0), &q, &k, &v, &w);
    for kernel in [Kernel::Native, Kernel::Tiled] {
        let lean = run(
            |q, k, v| ops::attention(q, k, v, 1.0, kernel),
            &q,
            &k,
            &v,
            &w,
        );
        assert!(to_vec(lean.y.clone()).iter().all(|x| x.is_finite()));
        for (got, want) in [
            (lean.y, naive.y.clone()),
            (lean.dq, naive.dq.clone()),
            (lean.dk, naive.dk.clone()),
            (lean.dv, naive.dv.clone()),
        ] {
            let err = rel_err(got, want);
            assert!(err < 1e-4, "{kernel:?}: differs by {err}");
        }
    }
    // Arch 1 sized: scalar tokens with large magnitudes.
    let q = tensor3([3, 1, 64], 5, 40.0, &device);
    let k = tensor3([3, 1, 64], 6, 40.0, &device);
    let v = tensor3([3, 1, 64], 7, 1.0, &device);
    let w = tensor3([3, 1, 64], 8, 1.0, &device);
    let naive = run(|q, k, v| ops::attention_naive(q, k, v, 1.0), &q, &k, &v, &w);
    let lean = run(
        |q, k, v| ops::attention(q, k, v, 1.0, Kernel::Native),
        &q,
        &k,
        &v,
        &w,
    );
    for (got, want) in [
        (lean.y, naive.y),
        (lean.dq, naive.dq),
        (lean.dk, naive.dk),
        (lean.dv, naive.dv),
    ] {
        let err = rel_err(got, want);
        assert!(
            err < 1e-4,
            "outer kernel with large scores differs by {err}"
        );
    }
}

#[test]
fn the_tiled_path_is_exact_for_any_block_size() {
    // Blocks of 1, 3 and 64 query rows (the tiled path otherwise takes all rows of these small
    // inputs in one block).
    let device = Device::flex();
    let flex = |t: Tensor<3>| t.try_into_primitive::<Flex>().unwrap();
    let (g, dk, dv, n) = (2, 3, 5, 70);
    let q = tensor3([g, dk, n], 21, 2.0, &device);
    let k = tensor3([g, dk, n], 22, 2.0, &device);
    let v = tensor3([g, dv, n], 23, 1.0, &device);
    let w = tensor3([g, dv, n], 24, 1.0, &device);
    let naive = run(|q, k, v| ops::attention_naive(q, k, v, 0.5), &q, &k, &v, &w);
    for rows in [1, 3, 64] {
        let (y, lse) = tiled::forward_blocks::<Flex>(
            flex(q.clone()),
            flex(k.clone()),
            flex(v.clone()),
            0.5,
            rows,
        );
        let y = Tensor::<3>::from_primitive::<Flex>(y);
        let (dq, dk_, dv_) = tiled::backward_blocks::<Flex>(
            flex(q.clone()),
            flex(k.clone()),
            flex(v.clone()),
            flex(y.clone()),
            lse,
            flex(w.clone()),
            0.5,
            rows,
        );
        for (name, got, want) in [
            ("y", y, naive.y.clone()),
            (
                "dq",
                Tensor::<3>::from_primitive::<Flex>(dq),
                naive.dq.clone(),
            ),
            (
                "dk",
                Tensor::<3>::from_primitive::<Flex>(dk_),
                naive.dk.clone(),
            ),
            (
                "dv",
                Tensor::<3>::from_primitive::<Flex>(dv_),
                naive.dv.clone(),
            ),
        ] {
            let err = rel_err(got, want);
            assert!(err < TOLERANCE, "blocks of {rows}: {name} differs by {err}");
        }
    }
}

#[test]
fn forward_keeps_the_row_log_sum_exp_and_backward_matches_autodiff() {
    let device = Device::flex();
    let (g, dk, dv, n) = (2, 2, 3, 20);
    let q = tensor3([g, dk, n], 31, 2.0, &device);
    let k = tensor3([g, dk, n], 32, 2.0, &device);
    let v = tensor3([g, dv, n], 33, 1.0, &device);
    let w = tensor3([g, dv, n], 34, 1.0, &device);
    let scores = q.clone().swap_dims(1, 2).matmul(k.clone()) * 0.7; // [g, n, n]
    let want_lse = scores.exp().sum_dim(2).log().reshape([g, n]);
    let naive = run(|q, k, v| ops::attention_naive(q, k, v, 0.7), &q, &k, &v, &w);
    for kernel in [Kernel::Native, Kernel::Tiled] {
        let (y, lse) = ops::attention_forward(q.clone(), k.clone(), v.clone(), 0.7, kernel);
        assert!(rel_err(lse.clone(), want_lse.clone()) < TOLERANCE);
        let (dq, dk_, dv_) = ops::attention_backward(
            q.clone(),
            k.clone(),
            v.clone(),
            y,
            lse,
            w.clone(),
            0.7,
            kernel,
        );
        assert!(rel_err(dq, naive.dq.clone()) < TOLERANCE);
        assert!(rel_err(dk_, naive.dk.clone()) < TOLERANCE);
        assert!(rel_err(dv_, naive.dv.clone()) < TOLERANCE);
    }
}

#[test]
fn gradients_agree_with_finite_differences() {
    let device = Device::flex();
    for (g, dk, dv, n) in [(2, 1, 1, 6), (1, 2, 2, 5)] {
        let q = tensor3([g, dk, n], 41, 1.5, &device);
        let k = tensor3([g, dk, n], 42, 1.5, &device);
        let v = tensor3([g, dv, n], 43, 1.0, &device);
        let w = tensor3([g, dv, n], 44, 1.0, &device);
        for kernel in [Kernel::Native, Kernel::Tiled] {
            let lean = run(
                |q, k, v| ops::attention(q, k, v, 0.9, kernel),
                &q,
                &k,
                &v,
                &w,
            );
            let loss = |q: Vec<f32>, k: Vec<f32>, v: Vec<f32>| -> f64 {
                let t =
                    |d: Vec<f32>, c| Tensor::<3>::from_data(TensorData::new(d, [g, c, n]), &device);
                let y = ops::attention(t(q, dk), t(k, dk), t(v, dv), 0.9, kernel);
                to_vec(y)
                    .iter()
                    .zip(to_vec(w.clone()))
                    .map(|(a, b)| (*a as f64) * b as f64)
                    .sum()
            };
            let base = [to_vec(q.clone()), to_vec(k.clone()), to_vec(v.clone())];
            let analytic = [to_vec(lean.dq), to_vec(lean.dk), to_vec(lean.dv)];
            let eps = 1e-2f32;
            for which in 0..3 {
                for e in 0..base[which].len() {
                    let mut plus = base.clone();
                    plus[which][e] += eps;
                    let mut minus = base.clone();
                    minus[which][e] -= eps;
                    let [qp, kp, vp] = plus;
                    let [qm, km, vm] = minus;
                    let numeric = (loss(qp, kp, vp) - loss(qm, km, vm)) / (2.0 * eps as f64);
                    let got = analytic[which][e] as f64;
                    assert!(
                        (numeric - got).abs() < 2e-3 * (1.0 + got.abs()),
                        "{kernel:?} g={g} dk={dk}: input {which}, element {e}: analytic {got}, finite difference {numeric}"
                    );
                }
            }
        }
    }
}

/// Arch 3's `[X; A X]` from tensor operations, as `ChannelAttention::attend` composes it: the
/// reference the operation is held to.
fn channel_attention_reference(
    x: Tensor<3>,
    wq: Tensor<2>,
    wk: Tensor<2>,
    heads: usize,
) -> Tensor<3> {
    let [b, c, _] = x.dims();
    let d = wq.dims()[1];
    let split = |t: Tensor<3>| t.reshape([b, c, heads, d / heads]).swap_dims(1, 2); // [b, H, c, d/H]
    let q = split(x.clone().matmul(wq.unsqueeze::<3>()));
    let k = split(x.clone().matmul(wk.unsqueeze::<3>()));
    let scores = q.matmul(k.swap_dims(2, 3)) / ((d / heads) as f32).sqrt(); // [b, H, c, c]
    let a = burn::tensor::activation::softmax(scores, 3)
        .mean_dim(1)
        .reshape([b, c, c]);
    Tensor::cat(vec![x.clone(), a.matmul(x)], 1) // [b, 2c, n]
}

#[test]
fn arch3_operation_equals_tensor_operations_outputs_and_all_gradients() {
    let device = Device::flex().autodiff();
    // (b, c, n, d, heads): odd sizes, several heads, the study's first layer (32 maps of 32x32,
    // D = 64), its last (256 maps of 2x2) and large scores (softmax nearly one-hot).
    let cases = [
        (2, 5, 7, 4, 1, 1.0),
        (3, 6, 9, 6, 2, 1.0),
        (1, 17, 4, 8, 4, 1.0),
        (2, 32, 1024, 64, 1, 0.05),
        (2, 256, 4, 64, 2, 1.0),
        (2, 4, 16, 4, 1, 8.0),
    ];
    for (i, &(b, c, n, d, heads, amp)) in cases.iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let leaf2 = |shape: [usize; 2], seed| {
            Tensor::<2>::from_data(
                TensorData::new(values(shape[0] * shape[1], seed, amp), shape),
                &device,
            )
            .require_grad()
        };
        let x = tensor3([b, c, n], seed, 1.0, &device).require_grad();
        let (wq, wk) = (leaf2([n, d], seed + 1), leaf2([n, d], seed + 2));
        let w = tensor3([b, 2 * c, n], seed + 3, 1.0, &device);
        let outputs = |f: &dyn Fn() -> Tensor<3>| {
            let out = f();
            let grads = (out.clone() * w.clone()).sum().backward();
            [
                out.inner(),
                x.grad(&grads).unwrap(),
                wq.grad(&grads).unwrap().unsqueeze::<3>(),
                wk.grad(&grads).unwrap().unsqueeze::<3>(),
            ]
        };
        let want =
            outputs(&|| channel_attention_reference(x.clone(), wq.clone(), wk.clone(), heads));
        for kernel in [Kernel::Native, Kernel::Tiled] {
            let got = outputs(&|| {
                ops::channel_attention(x.clone(), wq.clone(), wk.clone(), heads, kernel)
            });
            for (name, got, want) in ["out", "dx", "dwq", "dwk"]
                .into_iter()
                .zip(&got)
                .zip(&want)
                .map(|((n, g), w)| (n, g, w))
            {
                let err = rel_err(got.clone(), want.clone());
                assert!(
                    err < 2e-5,
                    "{kernel:?} b={b} c={c} n={n} d={d} heads={heads}: {name} differs from tensor operations by {err}"
                );
            }
        }
    }
}

#[test]
fn arch3_operation_takes_strided_inputs_and_refuses_mismatched_weights() {
    let device = Device::flex();
    // A transposed view as the input: the flex path makes it contiguous first.
    let x = tensor3([2, 9, 5], 1, 1.0, &device).swap_dims(1, 2); // [2, 5, 9]
    let wq = Tensor::<2>::from_data(TensorData::new(values(9 * 4, 2, 0.5), [9, 4]), &device);
    let wk = Tensor::<2>::from_data(TensorData::new(values(9 * 4, 3, 0.5), [9, 4]), &device);
    let want = channel_attention_reference(x.clone(), wq.clone(), wk.clone(), 2);
    let got = ops::channel_attention(x.clone(), wq.clone(), wk.clone(), 2, Kernel::Native);
    assert!(rel_err(got, want) < 2e-5);
    for (heads, wk, message) in [
        (3, wk.clone(), "3 heads do not divide the width 4"),
        (
            1,
            wk.clone().slice([0..8, 0..4]),
            "must both be [N, D] with the input's N = 9",
        ),
    ] {
        let err = std::panic::catch_unwind(|| {
            ops::channel_attention(x.clone(), wq.clone(), wk, heads, Kernel::Native)
        })
        .expect_err("refused");
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains(message), "{text}");
    }
}
