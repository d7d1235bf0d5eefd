//! Forward cost of layers, counted analytically.
//!
//! FLOPs count a multiply-add as 2 (the convention of fvcore and ptflops x2) and cover the
//! matrix work: convolutions, linear layers and the matrix products of attention. Element-wise
//! work (BatchNorm, ReLU, pooling, softmax) is a few percent of the total and is not counted.

/// FLOPs of a 2-D convolution producing `[c_out, h_out, w_out]` from `c_in` channels.
pub fn conv2d_flops(
    c_in: usize,
    c_out: usize,
    kernel: [usize; 2],
    groups: usize,
    out_hw: [usize; 2],
) -> u64 {
    2 * (c_in / groups) as u64
        * kernel[0] as u64
        * kernel[1] as u64
        * c_out as u64
        * out_hw[0] as u64
        * out_hw[1] as u64
}

/// FLOPs of a linear layer `d_in -> d_out` for one sample.
pub fn linear_flops(d_in: usize, d_out: usize) -> u64 {
    2 * d_in as u64 * d_out as u64
}

/// FLOPs of a matrix product `[m, k] x [k, n]`.
pub fn matmul_flops(m: usize, k: usize, n: usize) -> u64 {
    2 * m as u64 * k as u64 * n as u64
}

/// Output side of a 2x2, stride-2 max-pool (floor).
pub fn pooled(side: usize) -> usize {
    side / 2
}

/// Output side of a convolution or pooling window: `(side + padding - kernel) / stride + 1`,
/// 0 when the window does not fit.
pub fn conv_out(side: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (side + padding)
        .checked_sub(kernel)
        .map_or(0, |r| r / stride + 1)
}
