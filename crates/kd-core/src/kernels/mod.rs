//! kd's own CPU convolution kernels: forward and backward for burn's flex backend.
//!
//! burn-flex 0.22.1 has a native convolution forward but no native backward: burn's generic
//! fallback runs a transposed convolution for the input gradient and a convolution over swapped
//! axes for the weight gradient, with full transposed copies, and that is most of a CIFAR training
//! step on the CPU (docs/results/bench.md). This folder replaces that path for the zoo through
//! burn's backend-extension mechanism: `base.rs` routes a convolution, `extension.rs` defines the
//! operations (the inference ones with their bias, residual and ReLU fused by `epilogue.rs`, the
//! training batch norm optionally with its ReLU) with their handwritten backward, and `dense.rs`
//! (im2col + GEMM per image), `direct.rs` (the 3×3 same-size layers without im2col, on CPUs with
//! AVX-512 or AVX2 + FMA) and `depthwise.rs` (one channel's planes stacked and split into stride
//! phases; its `masked.rs` reads the 3×3 layers straight from each plane with masked vector loads)
//! compute them, on `conv_shape.rs`'s sizes, with `im2col.rs` and one bounds-checked GEMM call in
//! `gemm.rs`. `max_pool.rs` does VGG's max pooling, which burn-flex runs through its generic 3-D
//! pooling with indices, and `uninit.rs` writes batch norm's elementwise outputs without zeroing
//! them first. The zoo calls [`conv2d`] and [`max_pool2d`]; `tests/kernels.rs` checks every path
//! against burn's ops, values and gradients.

mod autodiff;
mod base;
mod batch_norm;
mod conv_shape;
mod dense;
mod depthwise;
mod direct;
mod epilogue;
mod extension;
mod gemm;
mod im2col;
mod max_pool;
mod reduce;
mod uninit;

pub use base::{
    batch_norm_relu_train, batch_norm_train, conv2d, conv2d_bias, conv2d_bias_add_relu, enabled,
    max_pool2d, scale_shift_relu, set_enabled,
};
