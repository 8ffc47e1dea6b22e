//! Wide residual networks: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2.
//!
//! Paper: S. Zagoruyko, N. Komodakis, "Wide Residual Networks", BMVC 2016 (arXiv:1605.07146).
//! Layer for layer RepDistiller `models/wrn.py`: depth `6n+4`, widths `16, 16k, 32k, 64k`,
//! pre-activation basic blocks (BN-ReLU-conv, BN-ReLU-conv) with a 1x1 `convShortcut` where the
//! width changes; after the third block group a final BN-ReLU, global average pooling and `fc`.
//! The three groups are `block1.layer.*`, `block2.layer.*`, `block3.layer.*`, as in the
//! reference state dict. Stage taps are the group outputs before the final BN (`f1 … f3`).

// `convShortcut` keeps the reference's state-dict key; the derive binds the field by name.
#![allow(non_snake_case)]

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::{Device, Tensor};

use super::base::Staged;
use super::layers::{ConvInit, ConvSpec, LinearInit, batch_norm, conv, global_avg_pool, linear};
use super::layers::{conv_norm_relu, norm_relu};

/// Hyper-parameters of a wide ResNet.
#[derive(Config, Debug)]
pub struct WideResNetConfig {
    /// Total depth, `6n + 4`.
    pub depth: usize,
    /// Widening factor `k`.
    pub widen: usize,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Input image channels (3 in the reference).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// A pre-activation basic block.
#[derive(Module, Debug)]
pub struct WideBlock {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    convShortcut: Option<Conv2d>,
}

impl WideBlock {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> Self {
        Self {
            bn1: batch_norm(input, device),
            conv1: ConvSpec::new(input, output, 3)
                .stride(stride)
                .init(ConvInit::HeFanOut, device),
            bn2: batch_norm(output, device),
            conv2: ConvSpec::new(output, output, 3).init(ConvInit::HeFanOut, device),
            convShortcut: (input != output).then(|| {
                ConvSpec::new(input, output, 1)
                    .stride(stride)
                    .init(ConvInit::HeFanOut, device)
            }),
        }
    }

    /// # Shapes
    /// - `x`: `[N, in, H, W]` → `[N, out, H/stride, W/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let activated = norm_relu(&self.bn1, x.clone());
        let out = conv_norm_relu(&self.conv1, &self.bn2, activated.clone());
        let out = conv(&self.conv2, out);
        match &self.convShortcut {
            // Width changes: the shortcut sees the activated input.
            Some(shortcut) => conv(shortcut, activated) + out,
            // Same width: the identity carries the raw input.
            None => x + out,
        }
    }
}

/// One group of blocks at one resolution (`NetworkBlock` in the reference).
#[derive(Module, Debug)]
pub struct BlockGroup {
    layer: Vec<WideBlock>,
}

/// A wide residual network.
#[derive(Module, Debug)]
pub struct WideResNet {
    conv1: Conv2d,
    block1: BlockGroup,
    block2: BlockGroup,
    block3: BlockGroup,
    bn1: BatchNorm,
    fc: Linear,
}

impl WideResNetConfig {
    /// Builds the network with the reference initialisation.
    pub fn init(&self, device: &Device) -> WideResNet {
        assert!(
            self.depth >= 10 && (self.depth - 4).is_multiple_of(6),
            "depth must be 6n+4"
        );
        let n = (self.depth - 4) / 6;
        let widths = [16, 16 * self.widen, 32 * self.widen, 64 * self.widen];
        let group = |input: usize, output: usize, stride: usize| BlockGroup {
            layer: (0..n)
                .map(|i| {
                    if i == 0 {
                        WideBlock::new(input, output, stride, device)
                    } else {
                        WideBlock::new(output, output, 1, device)
                    }
                })
                .collect(),
        };
        WideResNet {
            conv1: ConvSpec::new(self.in_channels, widths[0], 3).init(ConvInit::HeFanOut, device),
            block1: group(widths[0], widths[1], 1),
            block2: group(widths[1], widths[2], 2),
            block3: group(widths[2], widths[3], 2),
            bn1: batch_norm(widths[3], device),
            fc: linear(
                widths[3],
                self.num_classes,
                LinearInit::TorchDefaultZeroBias,
                device,
            ),
        }
    }
}

impl Staged for WideResNet {
    fn num_stages(&self) -> usize {
        3
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        conv(&self.conv1, x)
    }

    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4> {
        let group = match index {
            0 => &self.block1,
            1 => &self.block2,
            2 => &self.block3,
            _ => panic!("wide ResNets have 3 stages, asked for stage index {index}"),
        };
        group.layer.iter().fold(x, |x, block| block.forward(x))
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(norm_relu(&self.bn1, x))
    }

    fn clear_stages_before(&mut self, index: usize) {
        for stage in [
            &mut self.block1.layer,
            &mut self.block2.layer,
            &mut self.block3.layer,
        ]
        .into_iter()
        .take(index)
        {
            stage.clear();
        }
    }

    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.fc.forward(pooled)
    }
}
