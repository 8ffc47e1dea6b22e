//! Adapters between feature maps of different networks: a convolution and BatchNorm (and an
//! optional ReLU) taking a `[C, H, W]` map to another channel count at the same size (1x1
//! conv), half the size (3x3 stride-2 conv) or twice the size (2x2 stride-2 transposed conv), as
//! FitNets' regressors and their descendants do.
//!
//! Paper: A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, "FitNets: Hints
//! for Thin Deep Nets", ICLR 2015 (arXiv:1412.6550). SOKD's feature extension, IAKD's width
//! adapters and FFKD's regressors are built from this.

use burn::module::Module;
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, Initializer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::layers::norm;
use super::layers::{ConvInit, ConvSpec, batch_norm, conv};

/// Why two shapes cannot be adapted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot adapt a {from:?} map to {to:?}: the target size must equal, halve or double it")]
pub struct AdapterError {
    /// Source shape `[C, H, W]`.
    pub from: [usize; 3],
    /// Target shape `[C, H, W]`.
    pub to: [usize; 3],
}

/// How the spatial size changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    Same,
    Halve,
    Double,
}

fn resize(from: [usize; 3], to: [usize; 3]) -> Result<Resize, AdapterError> {
    let (fh, fw, th, tw) = (from[1], from[2], to[1], to[2]);
    if (fh, fw) == (th, tw) {
        Ok(Resize::Same)
    } else if (fh.div_ceil(2), fw.div_ceil(2)) == (th, tw) {
        Ok(Resize::Halve)
    } else if (2 * fh, 2 * fw) == (th, tw) {
        Ok(Resize::Double)
    } else {
        Err(AdapterError { from, to })
    }
}

/// A conv (or transposed conv) + BN (+ ReLU) adapter.
#[derive(Module, Debug)]
pub struct Adapter {
    conv: Option<Conv2d>,
    up: Option<ConvTranspose2d>,
    bn: BatchNorm,
    relu: bool,
}

impl Adapter {
    /// Checks that `from` can be adapted to `to` (plan time: no tensor).
    pub fn check(from: [usize; 3], to: [usize; 3]) -> Result<(), AdapterError> {
        resize(from, to).map(|_| ())
    }

    /// Builds the adapter, He-initialised (fan-out), BN 1/0.
    pub fn new(
        from: [usize; 3],
        to: [usize; 3],
        relu: bool,
        device: &Device,
    ) -> Result<Adapter, AdapterError> {
        let (conv, up) = match resize(from, to)? {
            Resize::Same => (
                Some(ConvSpec::new(from[0], to[0], 1).init(ConvInit::HeFanOut, device)),
                None,
            ),
            Resize::Halve => (
                Some(
                    ConvSpec::new(from[0], to[0], 3)
                        .stride(2)
                        .init(ConvInit::HeFanOut, device),
                ),
                None,
            ),
            Resize::Double => {
                let std = (2.0 / (4 * to[0]) as f64).sqrt();
                let up = ConvTranspose2dConfig::new([from[0], to[0]], [2, 2])
                    .with_stride([2, 2])
                    .with_bias(false)
                    .with_initializer(Initializer::Normal { mean: 0.0, std })
                    .init(device);
                (None, Some(up))
            }
        };
        Ok(Adapter {
            conv,
            up,
            bn: batch_norm(to[0], device),
            relu,
        })
    }

    /// # Shapes
    /// - `x`: `[N, from…]` → `[N, to…]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match (&self.conv, &self.up) {
            (Some(layer), _) => conv(layer, x),
            (None, Some(up)) => up.forward(x),
            (None, None) => x,
        };
        let out = norm(&self.bn, x);
        if self.relu { relu(out) } else { out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn every_resize_produces_the_target_shape() {
        let device = Device::flex();
        for (from, to) in [
            ([16, 8, 8], [32, 8, 8]),
            ([16, 8, 8], [64, 4, 4]),
            ([16, 4, 4], [8, 8, 8]),
        ] {
            let adapter = Adapter::new(from, to, true, &device).unwrap();
            let x = Tensor::<4>::random(
                [2, from[0], from[1], from[2]],
                Distribution::Default,
                &device,
            );
            assert_eq!(adapter.forward(x).dims(), [2, to[0], to[1], to[2]]);
        }
        assert_eq!(
            Adapter::check([16, 8, 8], [16, 3, 3]),
            Err(AdapterError {
                from: [16, 8, 8],
                to: [16, 3, 3]
            })
        );
    }
}
