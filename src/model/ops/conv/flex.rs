//! [`ConvOps`] on `flex`: the tensors as slices for the kernels of `visionnet_kernels::conv`,
//! Winograd's where it applies, im2col's otherwise; burn's own ops for what they do not take.

use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use visionnet_kernels::conv::{self as im2col, ConvShape, winograd};

use super::ConvOps;
use crate::model::ops::flex::{all_f32, contiguous, dims, tensor, values};

/// The kernels' shape of a conv of `x` with `weight` under `options`.
fn shape(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> ConvShape {
    ConvShape::new(
        dims::<4>(x),
        dims::<4>(weight),
        options.stride,
        options.padding,
        options.dilation,
    )
}

/// Whether the CPU kernels take this conv: `f32` tensors, no groups.
fn cpu_takes(tensors: &[&FlexTensor], options: &ConvOptions<2>) -> bool {
    options.groups == 1 && all_f32(tensors)
}

impl ConvOps for burn::backend::Flex {
    fn conv2d_lean(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if !cpu_takes(&[&x, &weight], &options) {
            return Self::conv2d(x, weight, None, options);
        }
        let shape = shape(&x, &weight, &options);
        let (x, weight) = (contiguous(x), contiguous(weight));
        let y = if winograd::applies(&shape) {
            winograd::forward(values(&x), values(&weight), &shape)
        } else {
            im2col::forward(values(&x), values(&weight), &shape)
        };
        tensor(y, vec![shape.batch, shape.c_out, shape.ho, shape.wo])
    }

    fn conv2d_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        dy: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !cpu_takes(&[&x, &weight, &dy], &options) {
            return Self::conv2d_x_backward(x, weight, dy, options);
        }
        let shape = shape(&x, &weight, &options);
        let (weight, dy) = (contiguous(weight), contiguous(dy));
        let dx = if winograd::applies(&shape) {
            winograd::input_grad(values(&weight), values(&dy), &shape)
        } else {
            im2col::input_grad(values(&weight), values(&dy), &shape)
        };
        tensor(dx, dims::<4>(&x).to_vec())
    }

    fn conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        dy: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !cpu_takes(&[&x, &weight, &dy], &options) {
            return Self::conv2d_weight_backward(x, weight, dy, options);
        }
        let shape = shape(&x, &weight, &options);
        let (x, dy) = (contiguous(x), contiguous(dy));
        let dw = if winograd::applies(&shape) {
            winograd::weight_grad(values(&x), values(&dy), &shape)
        } else {
            im2col::weight_grad(values(&x), values(&dy), &shape)
        };
        tensor(dw, dims::<4>(&weight).to_vec())
    }
}
