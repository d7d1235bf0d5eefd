//! The conv kernels of the study's CNN side by side: for each 3x3 layer of `cnn` (batch 64,
//! widths 32/64/128/256, a 2x2 pool after each conv), the output and the input gradient as one
//! im2col matrix product (`conv_cpu`) and by Winograd's F(4x4, 3x3) (`winograd`), and the
//! same for the weight gradient, in milliseconds per call (median of `--steps` calls, after
//! warm-up). A benchmark, never a test: run it on an otherwise idle machine.
//!
//! ```text
//! cargo bench --bench conv_kernels            # all threads
//! cargo bench --bench conv_kernels -- 1       # one thread
//! ```

use std::time::Instant;

use visionnet_kernels::conv::{self as conv_cpu, ConvShape, winograd};

/// Calls timed per kernel (the median is printed), after one untimed call.
const STEPS: usize = 9;

fn median_ms(mut f: impl FnMut() -> Vec<f32>) -> f64 {
    std::hint::black_box(f());
    let mut times: Vec<f64> = (0..STEPS)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[STEPS / 2]
}

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect()
}

fn main() {
    let threads: Option<usize> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    if let Some(threads) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("a rayon pool");
    }
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "| layer (batch 64) | output im2col | output winograd | input grad im2col | input grad winograd | weight grad im2col | weight grad winograd |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // (c_in, side, c_out): the CNN's convs at 32x32 input, a pool after each
    for (c_in, side, c_out) in [(3, 32, 32), (32, 16, 64), (64, 8, 128), (128, 4, 256)] {
        let s = ConvShape::new(
            [64, c_in, side, side],
            [c_out, c_in, 3, 3],
            [1, 1],
            [(1, 1); 2],
            [1, 1],
        );
        let x = values(64 * c_in * side * side);
        let w = values(c_out * c_in * 9);
        let dy = values(64 * c_out * s.ho * s.wo);
        let wino = winograd::applies(&s);
        let cell = |ms: Option<f64>| ms.map_or("-".to_string(), |ms| format!("{ms:.2} ms"));
        let fwd = median_ms(|| conv_cpu::forward(&x, &w, &s));
        let fwd_w = wino.then(|| median_ms(|| winograd::forward(&x, &w, &s)));
        let ig = median_ms(|| conv_cpu::input_grad(&w, &dy, &s));
        let ig_w = wino.then(|| median_ms(|| winograd::input_grad(&w, &dy, &s)));
        let wg = median_ms(|| conv_cpu::weight_grad(&x, &dy, &s));
        let wg_w = wino.then(|| median_ms(|| winograd::weight_grad(&x, &dy, &s)));
        println!(
            "| {c_in} -> {c_out}, {side}x{side} | {} | {} | {} | {} | {} | {} |",
            cell(Some(fwd)),
            cell(fwd_w),
            cell(Some(ig)),
            cell(ig_w),
            cell(Some(wg)),
            cell(wg_w)
        );
    }
}
