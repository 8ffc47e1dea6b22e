//! ShuffleNet V2 (`ShuffleV2`: the 1x net, widths 116/232/464, 3-7-3 units, 1024-d head).
//!
//! Paper: N. Ma, X. Zhang, H.-T. Zheng, J. Sun, "ShuffleNet V2: Practical Guidelines for
//! Efficient CNN Architecture Design", ECCV 2018 (arXiv:1807.11164). Layer for layer RepDistiller
//! `models/ShuffleNetv2.py`: a 1x1 stem to 24 channels (`conv1`, `bn1`), three stages each made
//! of a stride-2 down-sampling unit (two branches, `conv1 … conv5`) followed by channel-split
//! basic units, then `conv2`/`bn2` (1x1 to 1024), global average pooling and `linear`. PyTorch's
//! default initialisation throughout (the reference has no init loop).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::{Device, Tensor};

use super::base::Staged;
use super::layers::{
    ConvInit, ConvSpec, LinearInit, batch_norm, concat_shuffle, global_avg_pool, linear,
};
use super::layers::{conv_norm, conv_norm_relu};

/// Hyper-parameters of ShuffleNet V2.
#[derive(Config, Debug)]
pub struct ShuffleNetV2Config {
    /// Classifier outputs.
    pub num_classes: usize,
    /// Stage widths then the head width (`(116, 232, 464, 1024)` for the 1x net).
    #[config(default = "[116, 232, 464, 1024]")]
    pub widths: [usize; 4],
    /// Basic units per stage, after the down-sampling unit.
    #[config(default = "[3, 7, 3]")]
    pub units: [usize; 3],
    /// Input image channels (3 in the reference).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// The stride-2 unit: a depthwise-pointwise branch and a pointwise-depthwise-pointwise branch,
/// concatenated and shuffled.
#[derive(Module, Debug)]
pub struct DownUnit {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    conv4: Conv2d,
    bn4: BatchNorm,
    conv5: Conv2d,
    bn5: BatchNorm,
}

impl DownUnit {
    fn new(input: usize, output: usize, device: &Device) -> Self {
        let mid = output / 2;
        let init = ConvInit::TorchDefault;
        Self {
            conv1: ConvSpec::new(input, input, 3)
                .stride(2)
                .groups(input)
                .init(init, device),
            bn1: batch_norm(input, device),
            conv2: ConvSpec::new(input, mid, 1).init(init, device),
            bn2: batch_norm(mid, device),
            conv3: ConvSpec::new(input, mid, 1).init(init, device),
            bn3: batch_norm(mid, device),
            conv4: ConvSpec::new(mid, mid, 3)
                .stride(2)
                .groups(mid)
                .init(init, device),
            bn4: batch_norm(mid, device),
            conv5: ConvSpec::new(mid, mid, 1).init(init, device),
            bn5: batch_norm(mid, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let left = conv_norm(&self.conv1, &self.bn1, x.clone());
        let left = conv_norm_relu(&self.conv2, &self.bn2, left);
        let right = conv_norm_relu(&self.conv3, &self.bn3, x);
        let right = conv_norm(&self.conv4, &self.bn4, right);
        let right = conv_norm_relu(&self.conv5, &self.bn5, right);
        concat_shuffle(left, right)
    }
}

/// The stride-1 unit: split the channels in half, transform the second half, concatenate,
/// shuffle.
#[derive(Module, Debug)]
pub struct SplitUnit {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
}

impl SplitUnit {
    fn new(channels: usize, device: &Device) -> Self {
        let half = channels / 2;
        let init = ConvInit::TorchDefault;
        Self {
            conv1: ConvSpec::new(half, half, 1).init(init, device),
            bn1: batch_norm(half, device),
            conv2: ConvSpec::new(half, half, 3).groups(half).init(init, device),
            bn2: batch_norm(half, device),
            conv3: ConvSpec::new(half, half, 1).init(init, device),
            bn3: batch_norm(half, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, channels, _, _] = x.dims();
        let half = channels / 2;
        let kept = x.clone().narrow(1, 0, half);
        let out = x.narrow(1, half, channels - half);
        let out = conv_norm_relu(&self.conv1, &self.bn1, out);
        let out = conv_norm(&self.conv2, &self.bn2, out);
        let out = conv_norm_relu(&self.conv3, &self.bn3, out);
        concat_shuffle(kept, out)
    }
}

/// One child of a ShuffleNet V2 stage (`nn.Sequential` of mixed unit types).
// One down-sampling unit per stage: its size is no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ShuffleUnitV2 {
    /// The first unit of a stage.
    Down(DownUnit),
    /// The others.
    Split(SplitUnit),
}

impl ShuffleUnitV2 {
    /// # Shapes
    /// - `x`: `[N, in, H, W]` → `[N, out, H/stride, W/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ShuffleUnitV2::Down(unit) => unit.forward(x),
            ShuffleUnitV2::Split(unit) => unit.forward(x),
        }
    }
}

/// ShuffleNet V2 for 32x32 inputs.
#[derive(Module, Debug)]
pub struct ShuffleNetV2 {
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: Vec<ShuffleUnitV2>,
    layer2: Vec<ShuffleUnitV2>,
    layer3: Vec<ShuffleUnitV2>,
    conv2: Conv2d,
    bn2: BatchNorm,
    linear: Linear,
}

impl ShuffleNetV2Config {
    /// Builds the network with PyTorch's default initialisation.
    pub fn init(&self, device: &Device) -> ShuffleNetV2 {
        let stage = |input: usize, output: usize, units: usize| -> Vec<ShuffleUnitV2> {
            std::iter::once(ShuffleUnitV2::Down(DownUnit::new(input, output, device)))
                .chain((0..units).map(|_| ShuffleUnitV2::Split(SplitUnit::new(output, device))))
                .collect()
        };
        let [w1, w2, w3, head] = self.widths;
        ShuffleNetV2 {
            conv1: ConvSpec::new(self.in_channels, 24, 1).init(ConvInit::TorchDefault, device),
            bn1: batch_norm(24, device),
            layer1: stage(24, w1, self.units[0]),
            layer2: stage(w1, w2, self.units[1]),
            layer3: stage(w2, w3, self.units[2]),
            conv2: ConvSpec::new(w3, head, 1).init(ConvInit::TorchDefault, device),
            bn2: batch_norm(head, device),
            linear: linear(head, self.num_classes, LinearInit::TorchDefault, device),
        }
    }
}

impl Staged for ShuffleNetV2 {
    fn num_stages(&self) -> usize {
        3
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        conv_norm_relu(&self.conv1, &self.bn1, x)
    }

    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4> {
        let units = match index {
            0 => &self.layer1,
            1 => &self.layer2,
            2 => &self.layer3,
            _ => panic!("ShuffleNet V2 has 3 stages, asked for stage index {index}"),
        };
        units.iter().fold(x, |x, unit| unit.forward(x))
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(conv_norm_relu(&self.conv2, &self.bn2, x))
    }

    fn clear_stages_before(&mut self, index: usize) {
        for stage in [&mut self.layer1, &mut self.layer2, &mut self.layer3]
            .into_iter()
            .take(index)
        {
            stage.clear();
        }
    }

    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.linear.forward(pooled)
    }
}
