//! MobileNetV2, the CIFAR half-width variant (`mobile_half` in RepDistiller, `MobileNetV2` here).
//!
//! Paper: M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen, "MobileNetV2: Inverted
//! Residuals and Linear Bottlenecks", CVPR 2018 (arXiv:1801.04381). Layer for layer RepDistiller
//! `models/mobilenetv2.py` (from "Knowledge Distillation via Route Constrained Optimization"):
//! width multiplier 0.5, expansion 6, a stride-2 3x3 stem (`conv1`), seven groups of inverted
//! residuals (`blocks.i.j.conv.*`, each pointwise-depthwise-pointwise with BN and plain ReLU,
//! not ReLU6), a 1x1 conv to 1280 channels (`conv2`), average pooling and `classifier.0`.
//! Stages follow the reference feature list: groups 0-1, 2, 3-4 and 5-6.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::base::Staged;
use super::layers::{
    ConvInit, ConvSpec, Layer, LinearInit, batch_norm, global_avg_pool, linear, sequential,
};

/// `(expansion t, channels c, repeats n, stride s)` of the seven groups, before the width
/// multiplier.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Which block groups make up each stage (`f1 … f4` in the reference).
const STAGES: [std::ops::Range<usize>; 4] = [0..2, 2..3, 3..5, 5..7];

/// Hyper-parameters of MobileNetV2.
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Classifier outputs.
    pub num_classes: usize,
    /// Width multiplier (0.5 for the CIFAR half-width network).
    #[config(default = 0.5)]
    pub width: f64,
    /// Expansion ratio `T` of every group but the first.
    #[config(default = 6)]
    pub expansion: usize,
    /// Input image channels (3 in the reference).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// An inverted residual: pointwise expand, depthwise 3x3, pointwise project (linear).
#[derive(Module, Debug)]
pub struct InvertedResidual {
    conv: Vec<Layer>,
    residual: bool,
}

impl InvertedResidual {
    fn new(input: usize, output: usize, stride: usize, expansion: usize, device: &Device) -> Self {
        let hidden = input * expansion;
        let conv = vec![
            Layer::Conv(ConvSpec::new(input, hidden, 1).init(ConvInit::HeFanOut, device)),
            Layer::Norm(batch_norm(hidden, device)),
            Layer::relu(),
            Layer::Conv(
                ConvSpec::new(hidden, hidden, 3)
                    .stride(stride)
                    .groups(hidden)
                    .init(ConvInit::HeFanOut, device),
            ),
            Layer::Norm(batch_norm(hidden, device)),
            Layer::relu(),
            Layer::Conv(ConvSpec::new(hidden, output, 1).init(ConvInit::HeFanOut, device)),
            Layer::Norm(batch_norm(output, device)),
        ];
        Self {
            conv,
            residual: stride == 1 && input == output,
        }
    }

    /// # Shapes
    /// - `x`: `[N, in, H, W]` → `[N, out, H/stride, W/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.residual {
            x.clone() + sequential(&self.conv, x)
        } else {
            sequential(&self.conv, x)
        }
    }
}

/// MobileNetV2 for 32x32 inputs.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    conv1: Vec<Layer>,
    blocks: Vec<Vec<InvertedResidual>>,
    conv2: Vec<Layer>,
    classifier: Vec<Layer>,
}

fn conv_bn_relu(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Vec<Layer> {
    vec![
        Layer::Conv(
            ConvSpec::new(input, output, kernel)
                .stride(stride)
                .init(ConvInit::HeFanOut, device),
        ),
        Layer::Norm(batch_norm(output, device)),
        Layer::relu(),
    ]
}

impl MobileNetV2Config {
    /// Builds the network with the reference initialisation.
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let scaled = |c: usize| (c as f64 * self.width) as usize;
        let mut input = scaled(32);
        let conv1 = conv_bn_relu(self.in_channels, input, 3, 2, device);
        let mut blocks = Vec::new();
        for (i, &(t, c, n, s)) in SETTINGS.iter().enumerate() {
            let t = if i == 0 { t } else { self.expansion };
            let output = scaled(c);
            let group = (0..n)
                .map(|j| {
                    let block =
                        InvertedResidual::new(input, output, if j == 0 { s } else { 1 }, t, device);
                    input = output;
                    block
                })
                .collect();
            blocks.push(group);
        }
        let last = if self.width > 1.0 { scaled(1280) } else { 1280 };
        MobileNetV2 {
            conv1,
            blocks,
            conv2: conv_bn_relu(input, last, 1, 1, device),
            classifier: vec![Layer::Linear(linear(
                last,
                self.num_classes,
                LinearInit::Normal001ZeroBias,
                device,
            ))],
        }
    }
}

impl Staged for MobileNetV2 {
    fn num_stages(&self) -> usize {
        STAGES.len()
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        sequential(&self.conv1, x)
    }

    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4> {
        let groups = STAGES
            .get(index)
            .unwrap_or_else(|| panic!("MobileNetV2 has 4 stages, asked for stage index {index}"));
        self.blocks[groups.clone()]
            .iter()
            .flatten()
            .fold(x, |x, block| block.forward(x))
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(sequential(&self.conv2, x))
    }

    fn clear_stages_before(&mut self, index: usize) {
        for range in STAGES.iter().take(index) {
            for group in range.clone() {
                self.blocks[group].clear();
            }
        }
    }

    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        let [n, d] = pooled.dims();
        let out = sequential(&self.classifier, pooled.reshape([n, d, 1, 1]));
        let [n, classes, _, _] = out.dims();
        out.reshape([n, classes])
    }
}
