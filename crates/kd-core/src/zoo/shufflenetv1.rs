//! ShuffleNet V1 (`ShuffleV1`: 3 groups, widths 240/480/960, 4-8-4 units).
//!
//! Paper: X. Zhang, X. Zhou, M. Lin, J. Sun, "ShuffleNet: An Extremely Efficient Convolutional
//! Neural Network for Mobile Devices", CVPR 2018 (arXiv:1707.01083). Layer for layer RepDistiller
//! `models/ShuffleNetv1.py`: a 1x1 stem to 24 channels (`conv1`, `bn1`), three stages of
//! bottleneck units (grouped 1x1, channel shuffle, depthwise 3x3, grouped 1x1; the first unit of
//! each stage has stride 2 and concatenates a 3x3 average-pooled shortcut), global average
//! pooling and `linear`. The first grouped conv of the network (24 input channels) uses one
//! group, as in the reference. PyTorch's default initialisation throughout (the reference has
//! no init loop).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::base::Staged;
use super::layers::{
    ConvInit, ConvSpec, Layer, LinearInit, batch_norm, channel_shuffle, global_avg_pool, linear,
    sequential,
};
use super::layers::{conv_norm, conv_norm_add_relu, conv_norm_relu};

/// Hyper-parameters of ShuffleNet V1.
#[derive(Config, Debug)]
pub struct ShuffleNetV1Config {
    /// Classifier outputs.
    pub num_classes: usize,
    /// Output widths of the three stages.
    #[config(default = "[240, 480, 960]")]
    pub widths: [usize; 3],
    /// Units per stage.
    #[config(default = "[4, 8, 4]")]
    pub units: [usize; 3],
    /// Groups of the pointwise convolutions.
    #[config(default = 3)]
    pub groups: usize,
    /// Input image channels (3 in the reference).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// A ShuffleNet unit.
#[derive(Module, Debug)]
pub struct ShuffleUnitV1 {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    /// Empty, or `nn.Sequential(AvgPool2d(3, stride=2, padding=1))` for a stride-2 unit.
    shortcut: Vec<Layer>,
    shuffle_groups: usize,
    stride: usize,
}

impl ShuffleUnitV1 {
    fn new(input: usize, output: usize, stride: usize, groups: usize, device: &Device) -> Self {
        let mid = output / 4;
        let first_groups = if input == 24 { 1 } else { groups };
        let init = ConvInit::TorchDefault;
        Self {
            conv1: ConvSpec::new(input, mid, 1)
                .groups(first_groups)
                .init(init, device),
            bn1: batch_norm(mid, device),
            conv2: ConvSpec::new(mid, mid, 3)
                .stride(stride)
                .groups(mid)
                .init(init, device),
            bn2: batch_norm(mid, device),
            conv3: ConvSpec::new(mid, output, 1)
                .groups(groups)
                .init(init, device),
            bn3: batch_norm(output, device),
            shortcut: if stride == 2 {
                vec![Layer::avg_pool(3, 2, 1)]
            } else {
                Vec::new()
            },
            shuffle_groups: first_groups,
            stride,
        }
    }

    /// # Shapes
    /// - `x`: `[N, in, H, W]` → `[N, out (+ in if stride 2), H/stride, W/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = conv_norm_relu(&self.conv1, &self.bn1, x.clone());
        let out = channel_shuffle(out, self.shuffle_groups);
        let out = conv_norm_relu(&self.conv2, &self.bn2, out);
        let residual = sequential(&self.shortcut, x);
        if self.stride == 2 {
            let out = conv_norm(&self.conv3, &self.bn3, out);
            relu(Tensor::cat(vec![out, residual], 1))
        } else {
            conv_norm_add_relu(&self.conv3, &self.bn3, out, residual)
        }
    }
}

/// ShuffleNet V1 for 32x32 inputs.
#[derive(Module, Debug)]
pub struct ShuffleNetV1 {
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: Vec<ShuffleUnitV1>,
    layer2: Vec<ShuffleUnitV1>,
    layer3: Vec<ShuffleUnitV1>,
    linear: Linear,
}

impl ShuffleNetV1Config {
    /// Builds the network with PyTorch's default initialisation.
    pub fn init(&self, device: &Device) -> ShuffleNetV1 {
        let mut input = 24;
        let mut stage = |output: usize, units: usize| -> Vec<ShuffleUnitV1> {
            (0..units)
                .map(|i| {
                    let (stride, concatenated) = if i == 0 { (2, input) } else { (1, 0) };
                    let unit = ShuffleUnitV1::new(
                        input,
                        output - concatenated,
                        stride,
                        self.groups,
                        device,
                    );
                    input = output;
                    unit
                })
                .collect()
        };
        let layer1 = stage(self.widths[0], self.units[0]);
        let layer2 = stage(self.widths[1], self.units[1]);
        let layer3 = stage(self.widths[2], self.units[2]);
        ShuffleNetV1 {
            conv1: ConvSpec::new(self.in_channels, 24, 1).init(ConvInit::TorchDefault, device),
            bn1: batch_norm(24, device),
            layer1,
            layer2,
            layer3,
            linear: linear(
                self.widths[2],
                self.num_classes,
                LinearInit::TorchDefault,
                device,
            ),
        }
    }
}

impl Staged for ShuffleNetV1 {
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
            _ => panic!("ShuffleNet V1 has 3 stages, asked for stage index {index}"),
        };
        units.iter().fold(x, |x, unit| unit.forward(x))
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(x)
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
