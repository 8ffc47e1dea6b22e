//! VGG with batch normalisation: vgg8, vgg11, vgg13, vgg16, vgg19.
//!
//! Paper: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
//! Recognition", ICLR 2015 (arXiv:1409.1556); BN after every conv as in torchvision's `*_bn`.
//! Layer for layer RepDistiller `models/vgg.py` (`vgg*_bn`, the names its `model_dict` gives
//! `vgg8` … `vgg19`): five conv groups `block0 … block4`, each an `nn.Sequential` of
//! conv3x3(bias)-BN-ReLU with the group's last ReLU dropped (it is applied in `forward`, so the
//! pre-activation is reachable), 2x2 max pooling between groups (the fourth pool only for 64x64
//! inputs), global average pooling and a single `classifier` linear layer (the FC stack of
//! ImageNet VGG is removed). Stem = `block0`; stages = `block1 … block4`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::base::Staged;
use super::layers::{
    ConvInit, ConvSpec, Layer, LinearInit, batch_norm, global_avg_pool, linear, max_pool,
    sequential,
};

/// Hyper-parameters of a VGG network.
#[derive(Config, Debug)]
pub struct VggConfig {
    /// Depth: 8, 11, 13, 16 or 19.
    pub depth: usize,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Input image channels (3 in the reference).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// Conv widths of the five groups (RepDistiller's `cfg['S' | 'A' | 'B' | 'D' | 'E']`).
pub fn vgg_groups(depth: usize) -> Option<[&'static [usize]; 5]> {
    Some(match depth {
        8 => [&[64], &[128], &[256], &[512], &[512]],
        11 => [&[64], &[128], &[256, 256], &[512, 512], &[512, 512]],
        13 => [
            &[64, 64],
            &[128, 128],
            &[256, 256],
            &[512, 512],
            &[512, 512],
        ],
        16 => [
            &[64, 64],
            &[128, 128],
            &[256, 256, 256],
            &[512, 512, 512],
            &[512, 512, 512],
        ],
        19 => [
            &[64, 64],
            &[128, 128],
            &[256, 256, 256, 256],
            &[512, 512, 512, 512],
            &[512, 512, 512, 512],
        ],
        _ => return None,
    })
}

/// A VGG network with batch normalisation.
#[derive(Module, Debug)]
pub struct Vgg {
    block0: Vec<Layer>,
    block1: Vec<Layer>,
    block2: Vec<Layer>,
    block3: Vec<Layer>,
    block4: Vec<Layer>,
    pool: MaxPool2d,
    classifier: Linear,
}

fn conv_group(widths: &[usize], input: usize, device: &Device) -> Vec<Layer> {
    let mut layers = Vec::new();
    let mut input = input;
    for &width in widths {
        let conv = ConvSpec::new(input, width, 3)
            .with_bias()
            .init(ConvInit::HeFanOut, device);
        layers.push(Layer::Conv(conv));
        layers.push(Layer::Norm(batch_norm(width, device)));
        layers.push(Layer::relu());
        input = width;
    }
    layers.pop(); // the reference drops the group's last ReLU: `layers[:-1]`
    layers
}

impl VggConfig {
    /// Builds the network with the reference initialisation.
    pub fn init(&self, device: &Device) -> Vgg {
        let groups = vgg_groups(self.depth).expect("VGG depth must be 8, 11, 13, 16 or 19");
        let last = |g: &[usize]| *g.last().expect("non-empty group");
        Vgg {
            block0: conv_group(groups[0], self.in_channels, device),
            block1: conv_group(groups[1], last(groups[0]), device),
            block2: conv_group(groups[2], last(groups[1]), device),
            block3: conv_group(groups[3], last(groups[2]), device),
            block4: conv_group(groups[4], last(groups[3]), device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            classifier: linear(512, self.num_classes, LinearInit::Normal001ZeroBias, device),
        }
    }
}

impl Staged for Vgg {
    fn num_stages(&self) -> usize {
        4
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        relu(sequential(&self.block0, x))
    }

    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4> {
        let (block, x) = match index {
            0 => (&self.block1, max_pool(&self.pool, x)),
            1 => (&self.block2, max_pool(&self.pool, x)),
            2 => (&self.block3, max_pool(&self.pool, x)),
            3 => {
                // `if h == 64: x = self.pool3(x)`: a 64x64 input reaches here at 8x8, a 32x32
                // input at 4x4, which the reference feeds to block4 unpooled.
                let [_, _, height, _] = x.dims();
                (
                    &self.block4,
                    if height > 4 {
                        max_pool(&self.pool, x)
                    } else {
                        x
                    },
                )
            }
            _ => panic!("VGG has 4 stages, asked for stage index {index}"),
        };
        relu(sequential(block, x))
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(x)
    }

    fn clear_stages_before(&mut self, index: usize) {
        for stage in [
            &mut self.block1,
            &mut self.block2,
            &mut self.block3,
            &mut self.block4,
        ]
        .into_iter()
        .take(index)
        {
            stage.clear();
        }
    }

    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.classifier.forward(pooled)
    }
}
