//! CIFAR ResNets: resnet8/14/20/32/44/56/110, resnet8x4 and resnet32x4.
//!
//! Paper: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition",
//! CVPR 2016 (arXiv:1512.03385), §4.2: the 6n+2-layer CIFAR networks. Layer for layer the
//! definition in RepDistiller `models/resnet.py` (after fb.resnet.torch): a 3x3 stem conv, three
//! stages of `n` basic blocks at widths `w1, w2, w3` (strides 1, 2, 2), a 1x1-conv + BN
//! `downsample` where the shape changes, global average pooling and `fc`. The "x4" variants
//! widen every stage fourfold. Parameter names equal the reference state-dict keys
//! (`layer2.0.downsample.1.running_var`), BatchNorm's `gamma`/`beta` standing for
//! `weight`/`bias`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::{Device, Tensor};

use super::base::Staged;
use super::layers::{ConvInit, ConvSpec, Layer, LinearInit, batch_norm, global_avg_pool, linear};
use super::layers::{conv_norm_add_relu, conv_norm_relu};

/// Hyper-parameters of a CIFAR ResNet.
#[derive(Config, Debug)]
pub struct CifarResNetConfig {
    /// Total depth, `6n + 2`.
    pub depth: usize,
    /// Stem width then the widths of the three stages (`[16, 16, 32, 64]`, or x4).
    pub widths: [usize; 4],
    /// Classifier outputs.
    pub num_classes: usize,
    /// Input image channels (3 in the reference).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// The basic residual block: conv-BN-ReLU, conv-BN, add the (downsampled) input, ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    /// `nn.Sequential(conv1x1, BatchNorm2d)` where stride or width changes.
    downsample: Option<Vec<Layer>>,
}

impl BasicBlock {
    fn new(input: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || input != planes).then(|| {
            vec![
                Layer::Conv(
                    ConvSpec::new(input, planes, 1)
                        .stride(stride)
                        .init(ConvInit::HeFanOut, device),
                ),
                Layer::Norm(batch_norm(planes, device)),
            ]
        });
        Self {
            conv1: ConvSpec::new(input, planes, 3)
                .stride(stride)
                .init(ConvInit::HeFanOut, device),
            bn1: batch_norm(planes, device),
            conv2: ConvSpec::new(planes, planes, 3).init(ConvInit::HeFanOut, device),
            bn2: batch_norm(planes, device),
            downsample,
        }
    }

    /// # Shapes
    /// - `x`: `[N, in, H, W]` → `[N, planes, H/stride, W/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = conv_norm_relu(&self.conv1, &self.bn1, x.clone());
        let residual = match &self.downsample {
            Some(layers) => super::layers::sequential(layers, x),
            None => x,
        };
        conv_norm_add_relu(&self.conv2, &self.bn2, out, residual)
    }
}

/// A CIFAR ResNet.
#[derive(Module, Debug)]
pub struct CifarResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: Vec<BasicBlock>,
    layer2: Vec<BasicBlock>,
    layer3: Vec<BasicBlock>,
    fc: Linear,
}

impl CifarResNetConfig {
    /// Builds the network with the reference initialisation.
    pub fn init(&self, device: &Device) -> CifarResNet {
        assert!(
            self.depth >= 8 && (self.depth - 2).is_multiple_of(6),
            "depth must be 6n+2"
        );
        let n = (self.depth - 2) / 6;
        let [w0, w1, w2, w3] = self.widths;
        let stage = |input: usize, planes: usize, stride: usize| -> Vec<BasicBlock> {
            (0..n)
                .map(|i| {
                    let (input, stride) = if i == 0 { (input, stride) } else { (planes, 1) };
                    BasicBlock::new(input, planes, stride, device)
                })
                .collect()
        };
        CifarResNet {
            conv1: ConvSpec::new(self.in_channels, w0, 3).init(ConvInit::HeFanOut, device),
            bn1: batch_norm(w0, device),
            layer1: stage(w0, w1, 1),
            layer2: stage(w1, w2, 2),
            layer3: stage(w2, w3, 2),
            fc: linear(w3, self.num_classes, LinearInit::TorchDefault, device),
        }
    }
}

impl Staged for CifarResNet {
    fn num_stages(&self) -> usize {
        3
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        conv_norm_relu(&self.conv1, &self.bn1, x)
    }

    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4> {
        let blocks = match index {
            0 => &self.layer1,
            1 => &self.layer2,
            2 => &self.layer3,
            _ => panic!("CIFAR ResNets have 3 stages, asked for stage index {index}"),
        };
        blocks.iter().fold(x, |x, block| block.forward(x))
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
        self.fc.forward(pooled)
    }
}
