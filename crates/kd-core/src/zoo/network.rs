//! [`Network`], the one module type every role holds, and [`Arch`], its buildable description.
//!
//! The runtime stores teachers, students and peers as `Network`s and calls them through
//! [`Staged`]; the zoo table (`registry.rs`) maps a name to an `Arch`. An `Arch` knows the shape
//! of every tap by arithmetic on its configuration, so `kd plan` checks shapes without
//! allocating a tensor; the tests check that arithmetic against real forward passes.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::Serialize;

use super::base::{Staged, stage_tap};
use super::mobilenetv2::{MobileNetV2, MobileNetV2Config};
use super::resnet::{CifarResNet, CifarResNetConfig};
use super::resnet_imagenet::{ImageNetResNet, ImageNetResNetConfig};
use super::shufflenetv1::{ShuffleNetV1, ShuffleNetV1Config};
use super::shufflenetv2::{ShuffleNetV2, ShuffleNetV2Config};
use super::vgg::{Vgg, VggConfig, vgg_groups};
use super::wrn::{WideResNet, WideResNetConfig};

/// Any network of the zoo.
/// Variants differ in size; a run holds one per role, so boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    /// resnet8 … resnet110, resnet8x4, resnet32x4.
    CifarResNet(CifarResNet),
    /// wrn_16_1 … wrn_40_2.
    WideResNet(WideResNet),
    /// vgg8 … vgg19.
    Vgg(Vgg),
    /// MobileNetV2 (half width).
    MobileNetV2(MobileNetV2),
    /// ShuffleV1.
    ShuffleNetV1(ShuffleNetV1),
    /// ShuffleV2.
    ShuffleNetV2(ShuffleNetV2),
    /// ResNet18, ResNet34, ResNet50.
    ImageNetResNet(ImageNetResNet),
}

macro_rules! each_network {
    ($self:expr, $net:ident => $body:expr) => {
        match $self {
            Network::CifarResNet($net) => $body,
            Network::WideResNet($net) => $body,
            Network::Vgg($net) => $body,
            Network::MobileNetV2($net) => $body,
            Network::ShuffleNetV1($net) => $body,
            Network::ShuffleNetV2($net) => $body,
            Network::ImageNetResNet($net) => $body,
        }
    };
}

impl Staged for Network {
    fn num_stages(&self) -> usize {
        each_network!(self, net => net.num_stages())
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        each_network!(self, net => net.stem(x))
    }

    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4> {
        each_network!(self, net => net.stage(index, x))
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        each_network!(self, net => net.pool(x))
    }

    fn clear_stages_before(&mut self, index: usize) {
        each_network!(self, net => net.clear_stages_before(index))
    }

    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        each_network!(self, net => net.classify(pooled))
    }
}

/// A buildable architecture: one of the zoo's configuration types.
#[derive(Debug, Clone)]
pub enum Arch {
    /// A CIFAR ResNet.
    CifarResNet(CifarResNetConfig),
    /// A wide ResNet.
    WideResNet(WideResNetConfig),
    /// A VGG with batch normalisation.
    Vgg(VggConfig),
    /// MobileNetV2.
    MobileNetV2(MobileNetV2Config),
    /// ShuffleNet V1.
    ShuffleNetV1(ShuffleNetV1Config),
    /// ShuffleNet V2.
    ShuffleNetV2(ShuffleNetV2Config),
    /// ResNet18/34/50 with a CIFAR stem.
    ImageNetResNet(ImageNetResNetConfig),
}

/// The name and per-sample shape (no batch axis) of one tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TapShape {
    /// `stem`, `stage1` … `stageN`, `pooled` or `logits`.
    pub name: String,
    /// `[C, H, W]` for maps, `[D]` for vectors.
    pub shape: Vec<usize>,
}

/// Output size of a 3x3/stride-2/pad-1 conv or pool, and of `k=2, s=2` max pooling on even sizes.
fn halve(size: usize) -> usize {
    size.div_ceil(2)
}

impl Arch {
    /// Allocates the network with its reference initialisation.
    pub fn init(&self, device: &Device) -> Network {
        match self {
            Arch::CifarResNet(c) => Network::CifarResNet(c.init(device)),
            Arch::WideResNet(c) => Network::WideResNet(c.init(device)),
            Arch::Vgg(c) => Network::Vgg(c.init(device)),
            Arch::MobileNetV2(c) => Network::MobileNetV2(c.init(device)),
            Arch::ShuffleNetV1(c) => Network::ShuffleNetV1(c.init(device)),
            Arch::ShuffleNetV2(c) => Network::ShuffleNetV2(c.init(device)),
            Arch::ImageNetResNet(c) => Network::ImageNetResNet(c.init(device)),
        }
    }

    /// Number of stages.
    pub fn num_stages(&self) -> usize {
        match self {
            Arch::CifarResNet(_) | Arch::WideResNet(_) => 3,
            Arch::ShuffleNetV1(_) | Arch::ShuffleNetV2(_) => 3,
            Arch::Vgg(_) | Arch::MobileNetV2(_) | Arch::ImageNetResNet(_) => 4,
        }
    }

    /// Per-sample shape of every tap for a `[in_channels, height, width]` input, worked out from
    /// the configuration alone.
    pub fn tap_shapes(&self, height: usize, width: usize) -> Vec<TapShape> {
        let map = |c: usize, h: usize, w: usize| vec![c, h, w];
        let (h, w) = (height, width);
        let (stem, stages, pooled, classes): (Vec<usize>, Vec<Vec<usize>>, usize, usize) =
            match self {
                Arch::CifarResNet(c) => {
                    let [w0, w1, w2, w3] = c.widths;
                    let (h2, w2_) = (halve(h), halve(w));
                    let (h3, w3_) = (halve(h2), halve(w2_));
                    (
                        map(w0, h, w),
                        vec![map(w1, h, w), map(w2, h2, w2_), map(w3, h3, w3_)],
                        w3,
                        c.num_classes,
                    )
                }
                Arch::WideResNet(c) => {
                    let k = c.widen;
                    let (h2, w2) = (halve(h), halve(w));
                    let (h3, w3) = (halve(h2), halve(w2));
                    (
                        map(16, h, w),
                        vec![map(16 * k, h, w), map(32 * k, h2, w2), map(64 * k, h3, w3)],
                        64 * k,
                        c.num_classes,
                    )
                }
                Arch::Vgg(c) => {
                    let groups = vgg_groups(c.depth).expect("valid VGG depth");
                    let width_of = |g: usize| *groups[g].last().expect("non-empty group");
                    let mut sizes = vec![(h, w)];
                    for _ in 0..3 {
                        let (a, b) = *sizes.last().expect("non-empty");
                        sizes.push((a / 2, b / 2));
                    }
                    let (a, b) = sizes[3];
                    let last = if a > 4 { (a / 2, b / 2) } else { (a, b) };
                    let stages = vec![
                        map(width_of(1), sizes[1].0, sizes[1].1),
                        map(width_of(2), sizes[2].0, sizes[2].1),
                        map(width_of(3), sizes[3].0, sizes[3].1),
                        map(width_of(4), last.0, last.1),
                    ];
                    (map(width_of(0), h, w), stages, width_of(4), c.num_classes)
                }
                Arch::MobileNetV2(c) => {
                    let scaled = |ch: usize| (ch as f64 * c.width) as usize;
                    let (h1, w1) = (halve(h), halve(w));
                    let (h2, w2) = (halve(h1), halve(w1));
                    let (h3, w3) = (halve(h2), halve(w2));
                    let (h4, w4) = (halve(h3), halve(w3));
                    let last = if c.width > 1.0 { scaled(1280) } else { 1280 };
                    let stages = vec![
                        map(scaled(24), h1, w1),
                        map(scaled(32), h2, w2),
                        map(scaled(96), h3, w3),
                        map(scaled(320), h4, w4),
                    ];
                    (map(scaled(32), h1, w1), stages, last, c.num_classes)
                }
                Arch::ShuffleNetV1(c) => {
                    let mut size = (h, w);
                    let stages = c
                        .widths
                        .iter()
                        .map(|&width| {
                            size = (halve(size.0), halve(size.1));
                            map(width, size.0, size.1)
                        })
                        .collect();
                    (map(24, h, w), stages, c.widths[2], c.num_classes)
                }
                Arch::ShuffleNetV2(c) => {
                    let mut size = (h, w);
                    let stages = c.widths[..3]
                        .iter()
                        .map(|&width| {
                            size = (halve(size.0), halve(size.1));
                            map(width, size.0, size.1)
                        })
                        .collect();
                    (map(24, h, w), stages, c.widths[3], c.num_classes)
                }
                Arch::ImageNetResNet(c) => {
                    let expansion = if c.bottleneck { 4 } else { 1 };
                    let mut size = (h, w);
                    let stages = [64, 128, 256, 512]
                        .iter()
                        .enumerate()
                        .map(|(i, &planes)| {
                            if i > 0 {
                                size = (halve(size.0), halve(size.1));
                            }
                            map(planes * expansion, size.0, size.1)
                        })
                        .collect();
                    (map(64, h, w), stages, 512 * expansion, c.num_classes)
                }
            };
        let mut taps = vec![TapShape {
            name: "stem".into(),
            shape: stem,
        }];
        taps.extend(stages.into_iter().enumerate().map(|(i, shape)| TapShape {
            name: stage_tap(i),
            shape,
        }));
        taps.push(TapShape {
            name: "pooled".into(),
            shape: vec![pooled],
        });
        taps.push(TapShape {
            name: "logits".into(),
            shape: vec![classes],
        });
        taps
    }
}
