//! Helpers shared by the kernel tests (`kernels.rs`, `kernels_zoo.rs`).

use burn::tensor::{Device, Tensor, TensorData};

/// A tensor of deterministic pseudo-random values in `[-scale, scale]` (tests run in parallel
/// threads, so the device's shared generator is not used).
pub fn fixed<const D: usize>(
    dims: [usize; D],
    salt: u64,
    scale: f32,
    device: &Device,
) -> Tensor<D> {
    let n: usize = dims.iter().product();
    let mut state = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}
