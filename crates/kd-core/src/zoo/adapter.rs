//! Adapters between feature maps of different networks: a convolution and BatchNorm (and an
//! optional ReLU) taking a `[C, H, W]` map to another channel count at the same size or half of
//! it, as FitNets' regressors do.
//!
//! Paper: A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, "FitNets: Hints
//! for Thin Deep Nets", ICLR 2015 (arXiv:1412.6550). SOKD's feature extension, IAKD's width
//! adapters and FFKD's regressors are built from this.

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::layers::{ConvInit, ConvSpec, batch_norm};

/// Why two shapes cannot be adapted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot adapt a {from:?} map to {to:?}: sizes must be equal or halve")]
pub struct AdapterError {
    /// Source shape `[C, H, W]`.
    pub from: [usize; 3],
    /// Target shape `[C, H, W]`.
    pub to: [usize; 3],
}

/// A conv + BN (+ ReLU) adapter.
#[derive(Module, Debug)]
pub struct Adapter {
    conv: Conv2d,
    bn: BatchNorm,
    relu: bool,
}

impl Adapter {
    /// Checks that `from` can be adapted to `to` (plan time: no tensor).
    pub fn check(from: [usize; 3], to: [usize; 3]) -> Result<(), AdapterError> {
        let same = from[1] == to[1] && from[2] == to[2];
        let halved = from[1] == 2 * to[1] && from[2] == 2 * to[2];
        if same || halved {
            Ok(())
        } else {
            Err(AdapterError { from, to })
        }
    }

    /// A 1x1 conv (same size) or 3x3 stride-2 conv (half size), then BN, then ReLU if asked.
    pub fn new(
        from: [usize; 3],
        to: [usize; 3],
        relu: bool,
        device: &Device,
    ) -> Result<Adapter, AdapterError> {
        Self::check(from, to)?;
        let spec = if from[1] == to[1] {
            ConvSpec::new(from[0], to[0], 1)
        } else {
            ConvSpec::new(from[0], to[0], 3).stride(2)
        };
        Ok(Adapter {
            conv: spec.init(ConvInit::HeFanOut, device),
            bn: batch_norm(to[0], device),
            relu,
        })
    }

    /// # Shapes
    /// - `x`: `[N, from…]` → `[N, to…]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.bn.forward(self.conv.forward(x));
        if self.relu { relu(out) } else { out }
    }
}
