//! ImageNet-depth ResNets with a CIFAR stem: ResNet18, ResNet34, ResNet50.
//!
//! Paper: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition",
//! CVPR 2016 (arXiv:1512.03385), Table 1 (18/34 layers with basic blocks, 50 with bottlenecks).
//! Layer for layer RepDistiller `models/resnetv2.py` (after kuangliu/pytorch-cifar): the 7x7
//! stride-2 stem and max pool of ImageNet are replaced by one 3x3 stride-1 conv (`conv1`,
//! `bn1`), four stages `layer1 … layer4` at widths 64-128-256-512 (strides 1, 2, 2, 2) with a
//! 1x1 conv + BN `shortcut` where the shape changes, global average pooling and `linear`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::{Device, Tensor};

use super::base::Staged;
use super::layers::{
    ConvInit, ConvSpec, Layer, LinearInit, batch_norm, global_avg_pool, linear, sequential,
};
use super::layers::{conv_norm_add_relu, conv_norm_relu};

/// Hyper-parameters of a ResNet18/34/50.
#[derive(Config, Debug)]
pub struct ImageNetResNetConfig {
    /// Blocks per stage (`[2, 2, 2, 2]` for ResNet18, `[3, 4, 6, 3]` for 34 and 50).
    pub blocks: [usize; 4],
    /// Bottleneck blocks (expansion 4) instead of basic blocks.
    pub bottleneck: bool,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Input image channels (3 in the reference).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// A basic block (two 3x3 convs) or, with `conv3`/`bn3` present, a bottleneck block
/// (1x1, 3x3, 1x1 with fourfold expansion), as `BasicBlock`/`Bottleneck` in the reference.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Option<Conv2d>,
    bn3: Option<BatchNorm>,
    /// Empty, or `nn.Sequential(conv1x1, BatchNorm2d)`.
    shortcut: Vec<Layer>,
}

impl ResidualBlock {
    fn new(input: usize, planes: usize, stride: usize, bottleneck: bool, device: &Device) -> Self {
        let init = ConvInit::HeFanOut;
        let output = if bottleneck { planes * 4 } else { planes };
        let shortcut = if stride != 1 || input != output {
            vec![
                Layer::Conv(
                    ConvSpec::new(input, output, 1)
                        .stride(stride)
                        .init(init, device),
                ),
                Layer::Norm(batch_norm(output, device)),
            ]
        } else {
            Vec::new()
        };
        if bottleneck {
            Self {
                conv1: ConvSpec::new(input, planes, 1).init(init, device),
                bn1: batch_norm(planes, device),
                conv2: ConvSpec::new(planes, planes, 3)
                    .stride(stride)
                    .init(init, device),
                bn2: batch_norm(planes, device),
                conv3: Some(ConvSpec::new(planes, output, 1).init(init, device)),
                bn3: Some(batch_norm(output, device)),
                shortcut,
            }
        } else {
            Self {
                conv1: ConvSpec::new(input, planes, 3)
                    .stride(stride)
                    .init(init, device),
                bn1: batch_norm(planes, device),
                conv2: ConvSpec::new(planes, planes, 3).init(init, device),
                bn2: batch_norm(planes, device),
                conv3: None,
                bn3: None,
                shortcut,
            }
        }
    }

    /// # Shapes
    /// - `x`: `[N, in, H, W]` → `[N, planes·expansion, H/stride, W/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = conv_norm_relu(&self.conv1, &self.bn1, x.clone());
        let shortcut = sequential(&self.shortcut, x);
        match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => {
                let out = conv_norm_relu(&self.conv2, &self.bn2, out);
                conv_norm_add_relu(conv3, bn3, out, shortcut)
            }
            _ => conv_norm_add_relu(&self.conv2, &self.bn2, out, shortcut),
        }
    }
}

/// A ResNet18/34/50 with a CIFAR stem.
#[derive(Module, Debug)]
pub struct ImageNetResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: Vec<ResidualBlock>,
    layer2: Vec<ResidualBlock>,
    layer3: Vec<ResidualBlock>,
    layer4: Vec<ResidualBlock>,
    linear: Linear,
}

impl ImageNetResNetConfig {
    /// Builds the network with the reference initialisation.
    pub fn init(&self, device: &Device) -> ImageNetResNet {
        let expansion = if self.bottleneck { 4 } else { 1 };
        let mut input = 64;
        let mut stage = |planes: usize, blocks: usize, stride: usize| -> Vec<ResidualBlock> {
            (0..blocks)
                .map(|i| {
                    let block = ResidualBlock::new(
                        input,
                        planes,
                        if i == 0 { stride } else { 1 },
                        self.bottleneck,
                        device,
                    );
                    input = planes * expansion;
                    block
                })
                .collect()
        };
        let layer1 = stage(64, self.blocks[0], 1);
        let layer2 = stage(128, self.blocks[1], 2);
        let layer3 = stage(256, self.blocks[2], 2);
        let layer4 = stage(512, self.blocks[3], 2);
        ImageNetResNet {
            conv1: ConvSpec::new(self.in_channels, 64, 3).init(ConvInit::HeFanOut, device),
            bn1: batch_norm(64, device),
            layer1,
            layer2,
            layer3,
            layer4,
            linear: linear(
                512 * expansion,
                self.num_classes,
                LinearInit::TorchDefault,
                device,
            ),
        }
    }
}

impl Staged for ImageNetResNet {
    fn num_stages(&self) -> usize {
        4
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        conv_norm_relu(&self.conv1, &self.bn1, x)
    }

    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4> {
        let blocks = match index {
            0 => &self.layer1,
            1 => &self.layer2,
            2 => &self.layer3,
            3 => &self.layer4,
            _ => panic!("ResNet18/34/50 have 4 stages, asked for stage index {index}"),
        };
        blocks.iter().fold(x, |x, block| block.forward(x))
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(x)
    }

    fn clear_stages_before(&mut self, index: usize) {
        for stage in [
            &mut self.layer1,
            &mut self.layer2,
            &mut self.layer3,
            &mut self.layer4,
        ]
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
